#ifndef KA_SYS_H
#define KA_SYS_H
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>

/// The calling thread's errno (a macro in C).
static inline int ka_errno(void) { return errno; }
/// Non-variadic open(2) with a mode.
static inline int ka_open(const char *path, int flags, unsigned int mode) { return open(path, flags, mode); }
/// Non-variadic ioctl(2) taking a pointer argument.
static inline int ka_ioctl_ptr(int fd, unsigned long request, void *arg) { return ioctl(fd, request, arg); }
/// Binds a NETLINK_ROUTE socket to the given multicast groups (RTMGRP_* bits); returns bind(2)'s result.
static inline int ka_netlink_bind(int fd, unsigned int groups) {
    struct sockaddr_nl addr;
    memset(&addr, 0, sizeof addr);
    addr.nl_family = AF_NETLINK;
    addr.nl_groups = groups;
    return bind(fd, (struct sockaddr *)&addr, sizeof addr);
}
/// The RTMGRP_* groups the agent watches: links, IPv4/IPv6 addresses and routes.
static const unsigned int KA_RTMGRP_WATCHED = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE;
#endif
