/* envelope: not written yet. */
#include "buf.h"
