/* transport: being written. */
#include "buf.h"
