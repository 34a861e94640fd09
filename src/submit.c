/* submit: not written yet. */
#include "buf.h"
