/* msghdr: not written yet. */
#include "buf.h"
