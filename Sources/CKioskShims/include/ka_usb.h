#ifndef KA_USB_H
#define KA_USB_H
/// libusb and Linux FunctionFS for Swift: non-variadic wrappers of libusb_set_option, the
/// FunctionFS ioctls (function-like macros in C) as typed constants, and the wire sizes the
/// Swift side builds and parses by hand (FunctionFS descriptors, strings and events).
#include <libusb-1.0/libusb.h>
#include <linux/usb/ch9.h>
#include <linux/usb/functionfs.h>
#include <stddef.h>
#include <sys/prctl.h>

/// libusb_set_option(ctx, LIBUSB_OPTION_LOG_LEVEL, level).
static inline int ka_libusb_set_log_level(libusb_context *ctx, enum libusb_log_level level) {
    return libusb_set_option(ctx, LIBUSB_OPTION_LOG_LEVEL, level);
}
/// libusb_set_option for options that take no argument (e.g. LIBUSB_OPTION_NO_DEVICE_DISCOVERY).
static inline int ka_libusb_set_option_flag(libusb_context *ctx, enum libusb_option option) {
    return libusb_set_option(ctx, option);
}

/// Names the calling thread (shown by ps -L, top -H, gdb): USB event and I/O threads use it.
/// prctl(2) is variadic; at most 15 bytes are kept.
static inline int ka_usb_set_thread_name(const char *name) {
    return prctl(PR_SET_NAME, (unsigned long)name, 0UL, 0UL, 0UL);
}

static const int KA_LIBUSB_HOTPLUG_MATCH_ANY = LIBUSB_HOTPLUG_MATCH_ANY;

static const unsigned long KA_FUNCTIONFS_FIFO_STATUS = FUNCTIONFS_FIFO_STATUS;
static const unsigned long KA_FUNCTIONFS_FIFO_FLUSH = FUNCTIONFS_FIFO_FLUSH;
static const unsigned long KA_FUNCTIONFS_CLEAR_HALT = FUNCTIONFS_CLEAR_HALT;
static const unsigned long KA_FUNCTIONFS_INTERFACE_REVMAP = FUNCTIONFS_INTERFACE_REVMAP;
static const unsigned long KA_FUNCTIONFS_ENDPOINT_REVMAP = FUNCTIONFS_ENDPOINT_REVMAP;

/// Size of one event read from a FunctionFS ep0; its type byte is at KA_FFS_EVENT_TYPE_OFFSET.
static const size_t KA_FFS_EVENT_SIZE = sizeof(struct usb_functionfs_event);
static const size_t KA_FFS_EVENT_TYPE_OFFSET = offsetof(struct usb_functionfs_event, type);

/// Sizes of the FunctionFS blob heads (magic, length, flags / counts) the Swift side writes.
static const size_t KA_FFS_DESCS_HEAD_V2_SIZE = sizeof(struct usb_functionfs_descs_head_v2);
static const size_t KA_FFS_STRINGS_HEAD_SIZE = sizeof(struct usb_functionfs_strings_head);

// Wire layouts the Swift side writes and reads byte by byte (all little-endian, packed).
_Static_assert(sizeof(struct usb_functionfs_event) == 12, "FunctionFS event: 8-byte setup + type + pad");
_Static_assert(offsetof(struct usb_functionfs_event, type) == 8, "FunctionFS event type offset");
_Static_assert(sizeof(struct usb_ctrlrequest) == 8, "USB setup packet");
_Static_assert(sizeof(struct usb_functionfs_descs_head_v2) == 12, "FunctionFS v2 descriptors head");
_Static_assert(sizeof(struct usb_functionfs_strings_head) == 16, "FunctionFS strings head");
_Static_assert(sizeof(struct usb_interface_descriptor) == USB_DT_INTERFACE_SIZE, "interface descriptor");
_Static_assert(USB_DT_INTERFACE_SIZE == 9, "interface descriptor size");
_Static_assert(sizeof(struct usb_endpoint_descriptor_no_audio) == USB_DT_ENDPOINT_SIZE, "endpoint descriptor");
_Static_assert(USB_DT_ENDPOINT_SIZE == 7, "endpoint descriptor size");
#endif
