/* tls: being written. */
#include "buf.h"
