// The shims are static inline in the headers; this file gives the target a translation unit.
#include "CKioskShims.h"
#include <assert.h>
_Static_assert(sizeof(curl_off_t) == 8, "curl_off_t must be 64-bit");
