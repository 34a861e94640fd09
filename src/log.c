/* log: not written yet. */
#include "buf.h"
