/* spawn: not written yet. */
#include "buf.h"
