#ifndef KA_SYS_H
#define KA_SYS_H
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>

/// The calling thread's errno (a macro in C).
static inline int ka_errno(void) { return errno; }
/// Non-variadic open(2) with a mode.
static inline int ka_open(const char *path, int flags, unsigned int mode) { return open(path, flags, mode); }
/// Non-variadic ioctl(2) taking a pointer argument.
static inline int ka_ioctl_ptr(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }
#endif
