/* A UDP socket read through a uv_poll_t: one recvmmsg per readiness takes
 * every datagram queued (up to USOCK_BATCH), where uv_udp_t reads until
 * EAGAIN (two recvmsg calls for the one RTP packet a stream gets per 20 ms).
 * Sends are sendto on the non-blocking socket, as uv_udp_try_send does. */
#ifndef ARI_USOCK_H
#define ARI_USOCK_H
#include <uv.h>
#include <sys/socket.h>

#define USOCK_BATCH 8
#define USOCK_MAX 2048 /* bytes kept of one datagram; a longer one is flagged truncated */

typedef struct usock usock;
/* One datagram: n bytes at p from `from`; truncated when it was longer than USOCK_MAX. */
typedef void (*usock_recv_cb)(usock *u, const unsigned char *p, size_t n, const struct sockaddr *from, int truncated);

struct usock {
  uv_poll_t poll;        /* poll.data is the owner's */
  int fd;
  int inited;            /* the poll handle exists: usock_close must be called */
  usock_recv_cb cb;
};

/* Bind a socket to addr and start reading.  0, or a negative uv error.
 * Whenever u->inited is set afterwards (always on success), the owner closes
 * it with usock_close and gets its close_cb. */
int usock_open(usock *u, uv_loop_t *loop, const struct sockaddr *addr, usock_recv_cb cb);
/* 0, or a negative uv error (EAGAIN when the socket buffer is full). */
int usock_send(usock *u, const void *p, size_t n, const struct sockaddr *to);
int usock_getsockname(usock *u, struct sockaddr_storage *ss);
/* Stop reading, close the socket; close_cb gets the poll handle.  Only for an
 * inited usock. */
void usock_close(usock *u, uv_close_cb close_cb);
#endif
