/* result: not written yet. */
#include "buf.h"
