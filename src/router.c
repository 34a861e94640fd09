/* router: not written yet. */
#include "buf.h"
