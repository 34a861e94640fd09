/* server: not written yet. */
#include "buf.h"
