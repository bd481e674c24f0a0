/// CKioskShims: typed, non-variadic wrappers for the C APIs Swift cannot call directly
/// (variadic functions and function-like macros). One header per library.
#ifndef CKIOSKSHIMS_H
#define CKIOSKSHIMS_H
#include "ka_curl.h"
#include "ka_sys.h"
#include "ka_usb.h"
#include "ka_v4l2.h"
#endif
