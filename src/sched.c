/* sched: not written yet. */
#include "buf.h"
