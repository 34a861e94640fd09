/* smtpcmd: being written. */
#include "buf.h"
