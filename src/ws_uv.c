/* ws_uv.c - the WebSocket client's connections on the libuv loop (ws.c
 * is its Lua face: core.ws_connect, the conn class, the handler calls).
 *
 * Each connection (ws_conn) owns:
 *   - at most one socket at a time (ws_sock: the TCP handle, its TLS
 *     session through tls.c, its output); a socket that is given up is
 *     detached (its conn pointer cleared) and frees itself once libuv has
 *     closed it, so a conn never waits for a socket;
 *   - two uv timers: t_main (connect timeout / reconnect backoff / deferred
 *     close notification / wait for the peer's close) and t_ping
 *     (keep-alive pings + pong deadline);
 *   - the bytes read and not parsed yet (in), the fragments of the message
 *     being received (rx).
 * Host names are resolved with uv_getaddrinfo.  Frames are parsed and
 * built by rfc6455.c (the codec the server shares) as a client: what it
 * sends is masked with random masks, masked frames are refused.
 *
 * Reading: every complete frame of one read callback is handled in one
 * loop over the buffer the kernel filled (no copy of the payload of a
 * message that is one frame).  Writing: frames are queued on the socket
 * and written once per loop turn (the context's prepare handle): one
 * uv_try_write, then one uv_write for what the kernel did not take.
 *
 * What happens is told to Lua through ws.c's ws_emit_* functions; no Lua
 * values are made here.
 *
 * Lifetime: a conn that is not closed is anchored in the registry (its
 * callbacks keep running even if Lua drops the value).  Its memory is freed
 * here once the Lua value is gone (or the state closes) and its timers
 * have closed.
 */
#include "ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WS_MAX_QUEUED (64u * 1024u * 1024u)
#define WS_READ_CHUNK 65536u
#define WS_CLOSE_WAIT_MS 5000

struct ws_sock {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  ws_ctx *w;
  ws_conn *k;       /* NULL once detached */
  ws_sock *dnext;   /* in w->dirty */
  int dirty, writing, closing, connected, tls_done;
  tls_conn *tls;
  buf out;          /* frames (and the request) to send; with TLS plaintext */
  buf wire;         /* TLS: ciphertext to send */
  buf wbuf;         /* the bytes uv_write holds */
  unsigned char rnd[256]; /* random bytes for masks */
  size_t rnd_used;
};

typedef struct ws_gai {
  uv_getaddrinfo_t req;
  ws_conn *conn; /* NULL once the conn gave up on this lookup */
} ws_gai;

enum { WS_MAIN_IDLE, WS_MAIN_CONNECT_TIMEOUT, WS_MAIN_BACKOFF, WS_MAIN_NOTIFY_CLOSED, WS_MAIN_CLOSE_WAIT };

static void ws_lost(ws_conn *k, int code, const char *reason);
static void ws_fail(ws_conn *k, const char *msg);
static void ws_broken(ws_conn *k, const char *why);
static void ws_flush_cb(uv_prepare_t *h);
static void ws_connect_next(ws_conn *k);

/* ---------------------------------------------------------------- sockets */

static void ws_sock_closed(uv_handle_t *h) {
  ws_sock *s = (ws_sock *)h->data;
  s->w->nsocks--;
  tls_free(s->tls);
  buf_free(&s->out);
  buf_free(&s->wire);
  buf_free(&s->wbuf);
  free(s);
}

static void ws_sock_undirty(ws_sock *s) {
  ws_sock **pp;
  if (!s->dirty) return;
  for (pp = &s->w->dirty; *pp != NULL; pp = &(*pp)->dnext)
    if (*pp == s) {
      *pp = s->dnext;
      break;
    }
  s->dirty = 0;
}

static void ws_sock_dirty(ws_sock *s) {
  if (s->dirty || s->closing) return;
  s->dirty = 1;
  s->dnext = s->w->dirty;
  s->w->dirty = s;
  uv_prepare_start(&s->w->flush, ws_flush_cb); /* no-op when started */
}

static void ws_track_queued(ws_sock *s) {
  if (s->k != NULL) s->k->tx_bytes = s->out.len + s->wire.len + s->wbuf.len;
}

static void ws_write_cb(uv_write_t *req, int status);

/* Hand what is queued to the kernel: uv_try_write, then uv_write for the
 * rest.  0, or a libuv error / -1 with err. */
static int ws_sock_flush(ws_sock *s, char *err, size_t errlen) {
  buf *src = &s->out;
  uv_buf_t b;
  int r;
  if (s->closing) return 0;
  if (s->tls != NULL) {
    if (s->tls_done && s->out.len > 0) {
      if (tls_write(s->tls, s->out.p, s->out.len, err, errlen) != 0) return -1;
      s->out.len = 0;
    }
    if (tls_take(s->tls, &s->wire) != 0) {
      snprintf(err, errlen, "out of memory");
      return -1;
    }
    src = &s->wire;
  }
  if (s->writing || src->len == 0) {
    ws_track_queued(s);
    return 0;
  }
  b = uv_buf_init(src->p, (unsigned)src->len);
  r = uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
  if (r == UV_EAGAIN || r == UV_ENOSYS) r = 0;
  if (r < 0) {
    snprintf(err, errlen, "write failed: %s", uv_strerror(r));
    return r;
  }
  buf_consume(src, (size_t)r);
  if (src->len > 0) {
    buf t = *src;
    *src = s->wbuf; /* empty: no write is in flight */
    s->wbuf = t;
    b = uv_buf_init(s->wbuf.p, (unsigned)s->wbuf.len);
    r = uv_write(&s->wreq, (uv_stream_t *)&s->tcp, &b, 1, ws_write_cb);
    if (r != 0) {
      snprintf(err, errlen, "write failed: %s", uv_strerror(r));
      return r;
    }
    s->writing = 1;
  }
  ws_track_queued(s);
  return 0;
}

static void ws_write_cb(uv_write_t *req, int status) {
  ws_sock *s = (ws_sock *)req->data;
  s->writing = 0;
  s->wbuf.len = 0;
  if (s->k == NULL || status == UV_ECANCELED) return;
  if (status < 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "write failed: %s", uv_strerror(status));
    ws_broken(s->k, msg);
    return;
  }
  buf_shrink(&s->wbuf, 1024 * 1024);
  if (s->out.len > 0 || s->wire.len > 0) ws_sock_dirty(s);
  else ws_track_queued(s);
}

/* The context's prepare handle: write what every socket queued during
 * this loop turn. */
static void ws_flush_cb(uv_prepare_t *h) {
  ws_ctx *w = (ws_ctx *)h->data;
  ws_sock *s = w->dirty, *next;
  w->dirty = NULL;
  for (; s != NULL; s = next) {
    char err[200];
    next = s->dnext;
    s->dirty = 0;
    if (ws_sock_flush(s, err, sizeof err) != 0 && s->k != NULL) ws_broken(s->k, err);
  }
  if (w->dirty == NULL) uv_prepare_stop(&w->flush);
}

/* Give the socket up: a last attempt to write what is queued (graceful:
 * a close frame), then close it. */
static void ws_sock_close(ws_sock *s, int graceful) {
  char err[200];
  if (s->closing) return;
  ws_sock_undirty(s);
  if (graceful && s->connected && uv_is_writable((uv_stream_t *)&s->tcp)) ws_sock_flush(s, err, sizeof err);
  if (s->k != NULL) s->k->tx_bytes = 0;
  s->k = NULL;
  s->closing = 1;
  uv_close((uv_handle_t *)&s->tcp, ws_sock_closed);
}

static void ws_detach(ws_conn *k, int graceful) {
  if (k->sock != NULL) {
    ws_sock_close(k->sock, graceful);
    k->sock = NULL;
  }
}

static const unsigned char *ws_mask(ws_sock *s) {
  const unsigned char *m;
  if (s->rnd_used + 4 > sizeof s->rnd) {
    if (uv_random(NULL, NULL, s->rnd, sizeof s->rnd, 0, NULL) != 0) {
      size_t i;
      for (i = 0; i < sizeof s->rnd; i++) s->rnd[i] = (unsigned char)(rand() >> 7);
    }
    s->rnd_used = 0;
  }
  m = s->rnd + s->rnd_used;
  s->rnd_used += 4;
  return m;
}

/* Queue a frame on the conn's socket: 0 or -1 (memory). */
static int ws_queue(ws_conn *k, int op, const void *data, size_t n) {
  ws_sock *s = k->sock;
  if (s == NULL) return -1;
  if (rfc6455_frame_add(&s->out, op, data, n, ws_mask(s)) != 0) return -1;
  ws_track_queued(s);
  ws_sock_dirty(s);
  return 0;
}

static int ws_queue_close(ws_conn *k, int code, const char *reason, size_t rl) {
  ws_sock *s = k->sock;
  if (s == NULL) return -1;
  if (rfc6455_close_add(&s->out, code, reason, rl, ws_mask(s)) != 0) return -1;
  ws_sock_dirty(s);
  return 0;
}

/* ---------------------------------------------------------------- helpers */

static void ws_rx_reset(ws_conn *k) {
  k->in.len = 0;
  k->rx.len = 0;
  k->rx_binary = 0;
  k->rx_dropping = 0;
  k->skip = 0;
  k->msg = NULL;
  k->msg_len = 0;
  rfc6455_init(&k->ps, RFC6455_CLIENT, k->max_message);
  buf_shrink(&k->in, 256 * 1024);
  buf_shrink(&k->rx, 1024 * 1024);
}

void ws_conn_free(ws_conn *k) {
  int i;
  ws_detach(k, 0);
  if (k->prev) k->prev->next = k->next;
  else k->w->conns = k->next;
  if (k->next) k->next->prev = k->prev;
  free(k->host);
  free(k->hosthdr);
  free(k->path);
  free(k->protocol);
  free(k->cainfo);
  for (i = 0; i < k->nhdrs; i++) {
    free(k->hdr_names[i]);
    free(k->hdr_values[i]);
  }
  free(k->hdr_names);
  free(k->hdr_values);
  buf_free(&k->in);
  buf_free(&k->rx);
  free(k);
}

/* Free the conn if nothing refers to it any more. */
static void ws_maybe_free(ws_conn *k) {
  if (k->dead && k->timers_open == 0 && k->sock == NULL) ws_conn_free(k);
}

static void ws_timer_closed(uv_handle_t *h) {
  ws_conn *k = (ws_conn *)h->data;
  k->timers_open--;
  ws_maybe_free(k);
}

static void ws_close_timers(ws_conn *k) {
  if (!uv_is_closing((uv_handle_t *)&k->t_main)) uv_close((uv_handle_t *)&k->t_main, ws_timer_closed);
  if (!uv_is_closing((uv_handle_t *)&k->t_ping)) uv_close((uv_handle_t *)&k->t_ping, ws_timer_closed);
}

static void ws_cancel_gai(ws_conn *k) {
  if (k->gai != NULL) {
    k->gai->conn = NULL;
    uv_cancel((uv_req_t *)&k->gai->req);
    k->gai = NULL;
  }
}

/* The attempt failed or the connection broke: the socket goes at once,
 * on_error(msg), then on_close(1006, msg) (a handler may have closed the
 * conn in between: ws_lost then does nothing). */
static void ws_fail(ws_conn *k, const char *msg) {
  ws_detach(k, 0);
  ws_cancel_gai(k);
  ws_emit_error(k, msg);
  ws_lost(k, RFC6455_ABNORMAL, msg);
}

static void ws_fail_connect(ws_conn *k, const char *why) {
  char msg[512];
  snprintf(msg, sizeof msg, "connection to %s:%d failed: %s", k->host, k->port, why);
  ws_fail(k, msg);
}

/* The socket broke: before the upgrade an error of the attempt; after it
 * the connection is lost (on_close(1006, why), no on_error: as when the
 * server goes away). */
static void ws_broken(ws_conn *k, const char *why) {
  if (!k->upgraded) {
    ws_fail_connect(k, why);
    return;
  }
  ws_detach(k, 0);
  ws_lost(k, RFC6455_ABNORMAL, why);
}

/* ---------------------------------------------------------------- timers */

static uint64_t ws_backoff(ws_conn *k) {
  /* capped exponential backoff with full jitter */
  uint64_t cap = k->backoff_min;
  int i;
  for (i = 1; i < k->attempt && cap < k->backoff_max; i++) cap *= 2;
  if (cap > k->backoff_max) cap = k->backoff_max;
  if (cap <= k->backoff_min) return k->backoff_min;
  return k->backoff_min + (uint64_t)((double)(cap - k->backoff_min) * ((double)rand() / ((double)RAND_MAX + 1.0)));
}

static void ws_main_cb(uv_timer_t *t) {
  ws_conn *k = (ws_conn *)t->data;
  int mode = k->main_mode;
  k->main_mode = WS_MAIN_IDLE;
  switch (mode) {
  case WS_MAIN_CONNECT_TIMEOUT:
    if (k->state != WS_CONNECTING) return;
    ws_fail(k, "connect timeout");
    break;
  case WS_MAIN_BACKOFF:
    if (k->state == WS_WAITING && !k->user_closed && !k->dead) {
      k->reconnects++;
      ws_start_attempt(k);
    }
    break;
  case WS_MAIN_NOTIFY_CLOSED:
    ws_emit_close(k, k->close_code, k->close_reason, 0);
    ws_unanchor(k);
    break;
  case WS_MAIN_CLOSE_WAIT: /* the peer never answered our close */
    ws_detach(k, 0);
    ws_lost(k, k->close_code, k->close_reason);
    break;
  default:
    break;
  }
}

static void ws_main_start(ws_conn *k, int mode, uint64_t ms) {
  k->main_mode = mode;
  uv_timer_start(&k->t_main, ws_main_cb, ms, 0);
}

static void ws_main_stop(ws_conn *k) {
  k->main_mode = WS_MAIN_IDLE;
  uv_timer_stop(&k->t_main);
}

static void ws_ping_cb(uv_timer_t *t) {
  ws_conn *k = (ws_conn *)t->data;
  uint64_t now = uv_now(&k->c->uv);
  if (k->state != WS_OPEN || k->sock == NULL || k->close_sent) return;
  if (k->ping_phase == 1) {
    if (k->last_rx_at >= k->ping_sent_at) {
      /* answered: next ping one interval after the previous one */
      uint64_t wait = k->ping_interval > k->pong_timeout ? k->ping_interval - k->pong_timeout : 1;
      k->ping_phase = 0;
      uv_timer_start(&k->t_ping, ws_ping_cb, wait, 0);
    } else {
      core_log(k->c, CORE_LOG_WARN, "ws %s: no pong within %llu ms, reconnecting", k->host,
               (unsigned long long)k->pong_timeout);
      ws_detach(k, 0);
      ws_lost(k, RFC6455_ABNORMAL, "pong timeout");
    }
    return;
  }
  k->ping_phase = 1;
  k->ping_sent_at = now;
  if (ws_queue(k, RFC6455_PING, "", 0) != 0) {
    ws_fail(k, "out of memory");
    return;
  }
  uv_timer_start(&k->t_ping, ws_ping_cb, k->pong_timeout, 0);
}

/* ---------------------------------------------------------------- reading */

/* The server's close frame. */
static void ws_peer_close(ws_conn *k, const rfc6455_frame *f) {
  char reason[128];
  int code = f->close_code;
  if (k->close_sent) { /* the answer to ours */
    ws_detach(k, 1);
    ws_lost(k, k->close_code, k->close_reason);
    return;
  }
  snprintf(reason, sizeof reason, "%.*s", (int)(f->reason_len > 120 ? 120 : f->reason_len),
           f->reason ? f->reason : "");
  /* echo its code and reason, then close (the server's close ends it) */
  ws_queue_close(k, code, f->reason, f->reason_len);
  ws_detach(k, 1);
  ws_lost(k, code, reason);
}

/* A protocol violation by the server: close with code, report. */
static void ws_protocol_error(ws_conn *k, int code, const char *reason) {
  char msg[200];
  ws_queue_close(k, code, reason, strlen(reason));
  ws_detach(k, 1);
  snprintf(msg, sizeof msg, "protocol error from %s:%d: %s (closing with %d)", k->host, k->port, reason, code);
  ws_emit_error(k, msg);
  ws_lost(k, code, reason);
}

/* A data frame that would make its message larger than max_message (its
 * header is at p, the parser refused it): the message is dropped and
 * counted, its payload skipped as it arrives (never buffered), and the
 * connection goes on.  Returns the bytes of p used. */
static size_t ws_drop_oversize(ws_conn *k, const unsigned char *p, size_t n) {
  int fin = (p[0] & 0x80) != 0, i;
  size_t hl = 2;
  uint64_t len = p[1] & 0x7f;
  if (len == 126) {
    len = (uint64_t)p[2] << 8 | p[3];
    hl = 4;
  } else if (len == 127) {
    for (len = 0, i = 0; i < 8; i++) len = len << 8 | p[2 + i];
    hl = 10;
  }
  if (!k->rx_dropping) {
    k->dropped++;
    core_log(k->c, CORE_LOG_ERROR, "ws %s: message larger than max_message (%zu bytes) dropped", k->host,
             k->max_message);
  }
  k->rx.len = 0;
  buf_shrink(&k->rx, 1024 * 1024);
  /* the rest of the message: continuation frames, also dropped (as
   * binary: the text is not whole, its UTF-8 is not checked) */
  k->rx_dropping = !fin;
  k->ps.frag_op = fin ? 0 : RFC6455_BINARY;
  k->ps.frag_len = 0;
  k->ps.code = 0;
  k->ps.reason = NULL;
  n -= hl;
  if (len <= n) return hl + (size_t)len;
  k->skip = len - n;
  return hl + n;
}

static void ws_deliver(ws_conn *k, const void *p, size_t n, int binary) {
  k->msg = (const char *)p;
  k->msg_len = n;
  k->rx_binary = binary;
  if (!k->user_closed) ws_emit_message(k);
  k->msg = NULL;
  k->msg_len = 0;
}

static void ws_opened(ws_conn *k) {
  k->upgraded = 1;
  k->state = WS_OPEN;
  k->attempt = 0;
  k->last_rx_at = uv_now(&k->c->uv);
  ws_main_stop(k);
  rfc6455_init(&k->ps, RFC6455_CLIENT, k->max_message);
  if (k->user_closed || k->dead) {
    k->close_sent = 1;
    ws_queue_close(k, RFC6455_NORMAL, "", 0);
    ws_main_start(k, WS_MAIN_CLOSE_WAIT, WS_CLOSE_WAIT_MS);
    return;
  }
  if (k->ping_interval > 0) {
    k->ping_phase = 0;
    uv_timer_start(&k->t_ping, ws_ping_cb, k->ping_interval, 0);
  }
  ws_emit_open(k);
}

/* Everything complete in k->in: the handshake answer, then frames. */
static void ws_process(ws_conn *k, ws_sock *s) {
  size_t off = 0;
  if (!k->upgraded) {
    int status;
    char err[256];
    long r = rfc6455_response(k->in.p, k->in.len, k->accept, k->protocol, &status, err, sizeof err);
    if (r == 0) return;
    if (r < 0) {
      ws_fail_connect(k, err);
      return;
    }
    off = (size_t)r;
    ws_opened(k);
    if (k->sock != s) return;
  }
  k->last_rx_at = uv_now(&k->c->uv);
  while (off < k->in.len) {
    rfc6455_frame f;
    int r;
    if (k->skip > 0) {
      size_t take = k->in.len - off;
      if ((uint64_t)take > k->skip) take = (size_t)k->skip;
      off += take;
      k->skip -= take;
      continue;
    }
    r = rfc6455_parse(&k->ps, (unsigned char *)k->in.p + off, k->in.len - off, &f);
    if (r == 0) break;
    if (r < 0) {
      unsigned char op = (unsigned char)k->in.p[off] & 0x0f;
      if (k->ps.code == RFC6455_TOO_BIG && op < 8) {
        off += ws_drop_oversize(k, (unsigned char *)k->in.p + off, k->in.len - off);
        continue;
      }
      ws_protocol_error(k, k->ps.code, k->ps.reason);
      return;
    }
    off += f.size;
    switch (f.op) {
    case RFC6455_PING:
      if (!k->close_sent && ws_queue(k, RFC6455_PONG, f.data, f.len) != 0) {
        ws_fail(k, "out of memory");
        return;
      }
      break;
    case RFC6455_PONG:
      break;
    case RFC6455_CLOSE:
      ws_peer_close(k, &f);
      return;
    default:
      if (k->rx_dropping) {
        if (f.last) k->rx_dropping = 0;
      } else if (f.op != RFC6455_CONT && f.last) {
        ws_deliver(k, f.data, f.len, f.op == RFC6455_BINARY); /* one frame: no copy */
      } else {
        if (f.op != RFC6455_CONT) k->rx.len = 0;
        if (buf_add(&k->rx, f.data, f.len) != 0) {
          ws_protocol_error(k, RFC6455_INTERNAL_ERROR, "out of memory");
          return;
        }
        if (f.last) {
          ws_deliver(k, k->rx.p, k->rx.len, f.msg_op == RFC6455_BINARY);
          k->rx.len = 0;
          buf_shrink(&k->rx, 1024 * 1024);
        }
      }
      if (k->sock != s) return;
      break;
    }
  }
  buf_consume(&k->in, off);
  if (k->in.len == 0) buf_shrink(&k->in, 256 * 1024);
}

static void ws_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  ws_sock *s = (ws_sock *)h->data;
  ws_conn *k = s->k;
  (void)suggested;
  *b = uv_buf_init(NULL, 0);
  if (k == NULL) return;
  if (s->tls != NULL) {
    if (k->w->rbuf == NULL) k->w->rbuf = malloc(WS_READ_CHUNK);
    if (k->w->rbuf != NULL) *b = uv_buf_init(k->w->rbuf, WS_READ_CHUNK);
    return;
  }
  if (buf_reserve(&k->in, WS_READ_CHUNK) == 0)
    *b = uv_buf_init(k->in.p + k->in.len, (unsigned)(k->in.cap - k->in.len - 1));
}

/* The server closed the connection (or it broke). */
static void ws_eof(ws_conn *k, ssize_t nread) {
  if (!k->upgraded) {
    ws_fail_connect(k, nread == UV_EOF ? "closed before established" : uv_strerror((int)nread));
    return;
  }
  if (k->close_sent) {
    ws_detach(k, 0);
    ws_lost(k, k->close_code, k->close_reason);
    return;
  }
  ws_broken(k, nread == UV_EOF ? "connection lost" : uv_strerror((int)nread));
}

static void ws_read_cb(uv_stream_t *h, ssize_t nread, const uv_buf_t *b) {
  ws_sock *s = (ws_sock *)h->data;
  ws_conn *k = s->k;
  int peer_done = 0;
  if (k == NULL || nread == 0) return;
  if (nread == UV_ENOBUFS) {
    ws_fail(k, "out of memory");
    return;
  }
  if (nread < 0) {
    ws_eof(k, nread);
    return;
  }
  if (s->tls != NULL) {
    char err[300];
    int r;
    if (tls_feed(s->tls, b->base, (size_t)nread) != 0) {
      ws_fail(k, "out of memory");
      return;
    }
    if (!s->tls_done) {
      r = tls_handshake(s->tls, err, sizeof err);
      ws_sock_dirty(s);
      if (r < 0) {
        ws_fail_connect(k, err);
        return;
      }
      if (r == 0) return;
      s->tls_done = 1;
    }
    r = tls_read(s->tls, &k->in, err, sizeof err);
    ws_sock_dirty(s);
    if (r < 0) {
      if (k->upgraded) ws_fail(k, err);
      else ws_fail_connect(k, err);
      return;
    }
    peer_done = r == 1;
  } else {
    k->in.len += (size_t)nread;
  }
  ws_process(k, s);
  if (peer_done && k->sock == s) ws_eof(k, UV_EOF);
}

/* ---------------------------------------------------------------- connecting */

static int ws_send_request(ws_conn *k, ws_sock *s) {
  unsigned char nonce[16];
  char key[RFC6455_KEY_LEN + 1];
  buf *b = &s->out;
  int i, bad = 0;
  if (uv_random(NULL, NULL, nonce, sizeof nonce, 0, NULL) != 0)
    for (i = 0; i < 16; i++) nonce[i] = (unsigned char)(rand() >> 7);
  rfc6455_key(nonce, key);
  rfc6455_accept(key, strlen(key), k->accept);
  bad |= buf_adds(b, "GET ") | buf_adds(b, k->path) | buf_adds(b, " HTTP/1.1\r\nHost: ") | buf_adds(b, k->hosthdr);
  bad |= buf_adds(b, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ") | buf_adds(b, key);
  bad |= buf_adds(b, "\r\nSec-WebSocket-Version: 13\r\n");
  if (k->protocol != NULL)
    bad |= buf_adds(b, "Sec-WebSocket-Protocol: ") | buf_adds(b, k->protocol) | buf_adds(b, "\r\n");
  for (i = 0; i < k->nhdrs; i++)
    bad |= buf_adds(b, k->hdr_names[i]) | buf_adds(b, " ") | buf_adds(b, k->hdr_values[i]) | buf_adds(b, "\r\n");
  bad |= buf_adds(b, "\r\n");
  ws_sock_dirty(s);
  return bad ? -1 : 0;
}

static void ws_connect_cb(uv_connect_t *req, int status) {
  ws_sock *s = (ws_sock *)req->data;
  ws_conn *k = s->k;
  char err[300];
  if (k == NULL || status == UV_ECANCELED) return;
  if (status < 0) {
    if (k->addr_i < k->naddrs) { /* the name's next address */
      ws_detach(k, 0);
      ws_connect_next(k);
      return;
    }
    ws_fail_connect(k, uv_strerror(status));
    return;
  }
  s->connected = 1;
  uv_tcp_nodelay(&s->tcp, 1);
  if (uv_read_start((uv_stream_t *)&s->tcp, ws_alloc_cb, ws_read_cb) != 0) {
    ws_fail_connect(k, "cannot read");
    return;
  }
  if (s->tls != NULL && tls_handshake(s->tls, err, sizeof err) < 0) {
    ws_fail_connect(k, err);
    return;
  }
  if (ws_send_request(k, s) != 0) ws_fail(k, "out of memory");
}

/* Connect to the next address the name resolved to. */
static void ws_connect_next(ws_conn *k) {
  const struct sockaddr *sa = (const struct sockaddr *)&k->addrs[k->addr_i++];
  ws_sock *s;
  char err[300];
  int rc;
  s = calloc(1, sizeof *s);
  if (s == NULL) {
    ws_fail(k, "out of memory");
    return;
  }
  s->w = k->w;
  s->rnd_used = sizeof s->rnd;
  if (k->tls) {
    tls_ctx *x = tls_cache_get(&k->w->tls, k->cainfo, k->insecure, err, sizeof err);
    s->tls = x ? tls_new(x, k->host, err, sizeof err) : NULL;
    if (s->tls == NULL) {
      free(s);
      ws_fail(k, err);
      return;
    }
  }
  uv_tcp_init(&k->c->uv, &s->tcp);
  s->tcp.data = s;
  s->creq.data = s;
  s->wreq.data = s;
  s->k = k;
  k->w->nsocks++;
  k->sock = s;
  rc = uv_tcp_connect(&s->creq, &s->tcp, sa, ws_connect_cb);
  if (rc != 0) ws_fail_connect(k, uv_strerror(rc));
}

static void ws_gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  ws_gai *g = (ws_gai *)req->data;
  ws_conn *k = g->conn;
  struct addrinfo *a;
  char err[256];
  if (k != NULL && status == 0) {
    k->naddrs = k->addr_i = 0;
    for (a = res; a != NULL && k->naddrs < 4; a = a->ai_next) {
      struct sockaddr_storage *ss = &k->addrs[k->naddrs];
      if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) || a->ai_addrlen > sizeof *ss) continue;
      memcpy(ss, a->ai_addr, a->ai_addrlen);
      if (a->ai_family == AF_INET) ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)k->port);
      else ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)k->port);
      k->naddrs++;
    }
  }
  if (res) uv_freeaddrinfo(res);
  free(g);
  if (k == NULL) return;
  k->gai = NULL;
  if (k->state != WS_CONNECTING) return;
  if (status != 0 || k->naddrs == 0) {
    snprintf(err, sizeof err, "cannot resolve %s: %s", k->host, status ? uv_strerror(status) : "no address");
    ws_fail(k, err);
    return;
  }
  ws_connect_next(k);
}

void ws_start_attempt(ws_conn *k) {
  struct addrinfo hints;
  ws_gai *g;
  int rc;
  k->state = WS_CONNECTING;
  k->upgraded = 0;
  k->close_sent = 0;
  ws_rx_reset(k);
  ws_main_start(k, WS_MAIN_CONNECT_TIMEOUT, k->connect_timeout);
  g = calloc(1, sizeof *g);
  if (g == NULL) {
    ws_lost(k, RFC6455_ABNORMAL, "out of memory");
    return;
  }
  g->conn = k;
  g->req.data = g;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  k->gai = g;
  rc = uv_getaddrinfo(&k->c->uv, &g->req, ws_gai_cb, k->host, NULL, &hints);
  if (rc != 0) {
    char err[256];
    k->gai = NULL;
    free(g);
    snprintf(err, sizeof err, "cannot resolve %s: %s", k->host, uv_strerror(rc));
    ws_fail(k, err);
  }
}

/* The current attempt or connection is over (its socket detached). */
static void ws_lost(ws_conn *k, int code, const char *reason) {
  int was_open = k->state == WS_OPEN;
  int again;
  if (k->state == WS_CLOSED || k->state == WS_WAITING) return;
  ws_detach(k, 0);
  uv_timer_stop(&k->t_ping);
  ws_main_stop(k);
  ws_rx_reset(k);
  k->close_sent = 0;
  k->upgraded = 0;
  if (k->dead || k->c->closing || k->w->shutting_down) {
    k->state = WS_CLOSED;
    return;
  }
  again = k->reconnect && !k->user_closed;
  if (again) {
    k->state = WS_WAITING;
    k->attempt++;
    ws_main_start(k, WS_MAIN_BACKOFF, ws_backoff(k));
  } else {
    k->state = WS_CLOSED;
  }
  if (was_open || !again) ws_emit_close(k, code, reason, again);
  if (k->state == WS_CLOSED) ws_unanchor(k);
}

/* ---------------------------------------------------------------- for ws.c's class */

const char *ws_enqueue(ws_conn *k, const char *s, size_t n, int binary) {
  if (k->state != WS_OPEN || k->sock == NULL || k->user_closed) return "websocket is not open";
  if (k->tx_bytes + n > WS_MAX_QUEUED) return "send queue full";
  if (ws_queue(k, binary ? RFC6455_BINARY : RFC6455_TEXT, s, n) != 0) return "out of memory";
  return NULL;
}

static void ws_closed_by_client(ws_conn *k) {
  k->close_code = RFC6455_NORMAL;
  snprintf(k->close_reason, sizeof k->close_reason, "closed by client");
}

/* Stop for good: close the connection (gracefully when open), no reconnects. */
void ws_close_conn(ws_conn *k) {
  if (k->user_closed) return;
  k->user_closed = 1;
  uv_timer_stop(&k->t_ping);
  switch (k->state) {
  case WS_OPEN:
    if (k->sock != NULL && !k->close_sent) {
      ws_closed_by_client(k);
      k->close_sent = 1;
      ws_queue_close(k, RFC6455_NORMAL, "", 0);
      /* in case the peer never answers */
      ws_main_start(k, WS_MAIN_CLOSE_WAIT, WS_CLOSE_WAIT_MS);
    }
    break;
  case WS_CONNECTING:
  case WS_WAITING:
    ws_detach(k, 0);
    ws_cancel_gai(k);
    k->state = WS_CLOSED;
    ws_closed_by_client(k);
    ws_main_start(k, WS_MAIN_NOTIFY_CLOSED, 0);
    break;
  default:
    break;
  }
}

void ws_abandon(ws_conn *k) {
  k->user_closed = 1;
  k->dead = 1;
  ws_cancel_gai(k);
  if (k->sock != NULL && k->state == WS_OPEN && !k->close_sent) ws_queue_close(k, RFC6455_GOING_AWAY, "", 0);
  ws_detach(k, 1);
  ws_close_timers(k);
}

/* ---------------------------------------------------------------- context */

int ws_ctx_init(ws_ctx *w) {
  if (uv_prepare_init(&w->c->uv, &w->flush) != 0) return -1;
  w->flush.data = w;
  w->flush_open = 1;
  uv_unref((uv_handle_t *)&w->flush); /* only sockets keep the loop alive */
  return 0;
}

static void ws_flush_closed(uv_handle_t *h) {
  ws_ctx *w = (ws_ctx *)h->data;
  w->flush_open = 0;
}

void ws_shutdown(core_loop *c, void *ud) {
  ws_ctx *w = (ws_ctx *)ud;
  ws_conn *k, *next;
  int i;
  w->shutting_down = 1;
  for (k = w->conns; k != NULL; k = next) {
    next = k->next;
    if (k->box) *k->box = NULL;
    k->box = NULL;
    k->on_open = k->on_message = k->on_close = k->on_error = LUA_NOREF;
    k->self_ref = LUA_NOREF;
    ws_abandon(k);
  }
  if (w->flush_open && !uv_is_closing((uv_handle_t *)&w->flush)) uv_close((uv_handle_t *)&w->flush, ws_flush_closed);
  for (i = 0; i < 100 && (w->conns != NULL || w->nsocks > 0 || w->flush_open); i++) uv_run(&c->uv, UV_RUN_NOWAIT);
  tls_cache_free(&w->tls);
  free(w->rbuf);
  w->rbuf = NULL;
  /* If something did not finish closing, leaking is safer than freeing
   * what a callback may still reach. */
  if (w->conns == NULL && w->nsocks == 0 && !w->flush_open) free(w);
  else {
    for (k = w->conns; k != NULL; k = k->next)
      core_log(c, CORE_LOG_ERROR, "ws: %s:%d still referenced at shutdown (timers %d)", k->host, k->port,
               k->timers_open);
  }
}
