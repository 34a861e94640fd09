/* enqueue: not written yet. */
#include "buf.h"
