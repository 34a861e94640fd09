/* localsub: not written yet. */
#include "buf.h"
