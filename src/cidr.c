/* cidr: being written. */
#include "buf.h"
