/* store: not written yet. */
#include "buf.h"
