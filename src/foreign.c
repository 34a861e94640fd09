/* foreign: not written yet. */
#include "buf.h"
