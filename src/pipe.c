/* pipe: not written yet. */
#include "buf.h"
