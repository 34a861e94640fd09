/* pipeaddr: not written yet. */
#include "buf.h"
