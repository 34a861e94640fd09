/* address: not written yet. */
#include "buf.h"
