/* routeinfo: not written yet. */
#include "buf.h"
