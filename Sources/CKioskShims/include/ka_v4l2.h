#ifndef KA_V4L2_H
#define KA_V4L2_H
/// libv4l2 and V4L2 for Swift: non-variadic wrappers of v4l2_open/v4l2_ioctl, and the VIDIOC_*
/// requests and fourccs (function-like macros in C) as typed constants.
#include <libv4l2.h>
#include <linux/videodev2.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/ioctl.h>

/// v4l2_open without a mode (V4L2 nodes are never created).
static inline int ka_v4l2_open(const char *path, int flags) { return v4l2_open(path, flags); }
/// v4l2_ioctl taking a pointer argument (every VIDIOC_* request does).
static inline int ka_v4l2_ioctl(int fd, unsigned long request, void *arg) { return v4l2_ioctl(fd, request, arg); }
/// v4l2_close.
static inline int ka_v4l2_close(int fd) { return v4l2_close(fd); }
/// v4l2_mmap of a driver buffer (read/write, shared); NULL on failure (errno set), never MAP_FAILED.
static inline void *ka_v4l2_mmap(int fd, size_t length, int64_t offset) {
    void *p = v4l2_mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, offset);
    return p == MAP_FAILED ? NULL : p;
}
/// v4l2_munmap.
static inline int ka_v4l2_munmap(void *start, size_t length) { return v4l2_munmap(start, length); }

static const unsigned long KA_VIDIOC_QUERYCAP = VIDIOC_QUERYCAP;
static const unsigned long KA_VIDIOC_ENUM_FMT = VIDIOC_ENUM_FMT;
static const unsigned long KA_VIDIOC_G_FMT = VIDIOC_G_FMT;
static const unsigned long KA_VIDIOC_S_FMT = VIDIOC_S_FMT;
static const unsigned long KA_VIDIOC_TRY_FMT = VIDIOC_TRY_FMT;
static const unsigned long KA_VIDIOC_REQBUFS = VIDIOC_REQBUFS;
static const unsigned long KA_VIDIOC_QUERYBUF = VIDIOC_QUERYBUF;
static const unsigned long KA_VIDIOC_QBUF = VIDIOC_QBUF;
static const unsigned long KA_VIDIOC_DQBUF = VIDIOC_DQBUF;
static const unsigned long KA_VIDIOC_STREAMON = VIDIOC_STREAMON;
static const unsigned long KA_VIDIOC_STREAMOFF = VIDIOC_STREAMOFF;
static const unsigned long KA_VIDIOC_ENUMINPUT = VIDIOC_ENUMINPUT;
static const unsigned long KA_VIDIOC_G_INPUT = VIDIOC_G_INPUT;
static const unsigned long KA_VIDIOC_S_INPUT = VIDIOC_S_INPUT;
static const unsigned long KA_VIDIOC_G_OUTPUT = VIDIOC_G_OUTPUT;
static const unsigned long KA_VIDIOC_S_OUTPUT = VIDIOC_S_OUTPUT;
static const unsigned long KA_VIDIOC_G_CTRL = VIDIOC_G_CTRL;
static const unsigned long KA_VIDIOC_S_CTRL = VIDIOC_S_CTRL;
static const unsigned long KA_VIDIOC_QUERYCTRL = VIDIOC_QUERYCTRL;
static const unsigned long KA_VIDIOC_G_PARM = VIDIOC_G_PARM;
static const unsigned long KA_VIDIOC_S_PARM = VIDIOC_S_PARM;
static const unsigned long KA_VIDIOC_ENUM_FRAMESIZES = VIDIOC_ENUM_FRAMESIZES;

/// Camera: plain open(2)+ioctl(2) QUERYCAP for enumeration (no libv4l2 set-up per node).
static inline int ka_v4l2_querycap_raw(int fd, struct v4l2_capability *cap) { return ioctl(fd, VIDIOC_QUERYCAP, cap); }

static const uint32_t KA_V4L2_PIX_FMT_RGB24 = V4L2_PIX_FMT_RGB24;
static const uint32_t KA_V4L2_PIX_FMT_YUYV = V4L2_PIX_FMT_YUYV;
static const uint32_t KA_V4L2_PIX_FMT_MJPEG = V4L2_PIX_FMT_MJPEG;
static const uint32_t KA_V4L2_PIX_FMT_GREY = V4L2_PIX_FMT_GREY;
static const uint32_t KA_V4L2_PIX_FMT_BGR24 = V4L2_PIX_FMT_BGR24;
static const uint32_t KA_V4L2_PIX_FMT_UYVY = V4L2_PIX_FMT_UYVY;

// Layouts the Swift side relies on (x86_64/aarch64 Linux, 64-bit time).
_Static_assert(sizeof(struct v4l2_capability) == 104, "v4l2_capability layout");
_Static_assert(sizeof(struct v4l2_pix_format) == 48, "v4l2_pix_format layout");
_Static_assert(sizeof(struct v4l2_format) == 208, "v4l2_format layout");
_Static_assert(sizeof(struct v4l2_requestbuffers) == 20, "v4l2_requestbuffers layout");
_Static_assert(sizeof(struct v4l2_buffer) == 88, "v4l2_buffer layout");
_Static_assert(sizeof(struct v4l2_input) == 80, "v4l2_input layout");
_Static_assert(sizeof(struct v4l2_control) == 8, "v4l2_control layout");
_Static_assert(sizeof(struct v4l2_streamparm) == 204, "v4l2_streamparm layout");
#endif
