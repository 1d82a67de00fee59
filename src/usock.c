/* UDP over a uv_poll_t (see usock.h). */
#define _GNU_SOURCE /* recvmmsg */
#include "usock.h"
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>

static void usock_poll_cb(uv_poll_t *h, int status, int events) {
  usock *u = (usock *)h;
  static unsigned char bufs[USOCK_BATCH][USOCK_MAX];
  struct mmsghdr msgs[USOCK_BATCH];
  struct iovec iov[USOCK_BATCH];
  struct sockaddr_storage from[USOCK_BATCH];
  int i, n;
  (void)events;
  if (status < 0) return;
  memset(msgs, 0, sizeof msgs);
  for (i = 0; i < USOCK_BATCH; i++) {
    iov[i].iov_base = bufs[i];
    iov[i].iov_len = USOCK_MAX;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &from[i];
    msgs[i].msg_hdr.msg_namelen = sizeof from[i];
  }
  do n = recvmmsg(u->fd, msgs, USOCK_BATCH, MSG_DONTWAIT, NULL);
  while (n < 0 && errno == EINTR);
  /* the callback may close the socket: stop at once when it does */
  for (i = 0; i < n && u->fd >= 0; i++)
    u->cb(u, bufs[i], msgs[i].msg_len > USOCK_MAX ? USOCK_MAX : msgs[i].msg_len,
          (const struct sockaddr *)&from[i], (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0);
}

int usock_open(usock *u, uv_loop_t *loop, const struct sockaddr *addr, usock_recv_cb cb) {
  socklen_t len = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  int r;
  u->cb = cb;
  u->inited = 0;
  u->fd = socket(addr->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (u->fd < 0) return -errno;
  if (bind(u->fd, addr, len) != 0) {
    r = -errno;
    close(u->fd);
    u->fd = -1;
    return r;
  }
  r = uv_poll_init_socket(loop, &u->poll, u->fd);
  if (r != 0) { close(u->fd); u->fd = -1; return r; }
  u->inited = 1;
  return uv_poll_start(&u->poll, UV_READABLE, usock_poll_cb);
}

int usock_send(usock *u, const void *p, size_t n, const struct sockaddr *to) {
  socklen_t len = to->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  ssize_t r;
  if (u->fd < 0) return UV_EBADF;
  do r = sendto(u->fd, p, n, 0, to, len);
  while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : 0;
}

int usock_getsockname(usock *u, struct sockaddr_storage *ss) {
  socklen_t len = sizeof *ss;
  if (u->fd < 0) return UV_EBADF;
  return getsockname(u->fd, (struct sockaddr *)ss, &len) == 0 ? 0 : -errno;
}

void usock_close(usock *u, uv_close_cb close_cb) {
  int fd = u->fd;
  u->fd = -1;
  u->inited = 0;
  uv_close((uv_handle_t *)&u->poll, close_cb); /* stops polling at once */
  if (fd >= 0) close(fd);
}
