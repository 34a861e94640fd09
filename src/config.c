/* config: not written yet. */
#include "buf.h"
