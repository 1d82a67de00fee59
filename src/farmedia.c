/* farmedia.c - the far (Asterisk) end of an external media stream, for the
 * simulator: it sends synthetic audio to the app and measures what the app
 * sends back, with no Lua per frame.
 *
 *   core.farmedia(opts, on_event) -> peer
 *     opts.kind    "rtp" | "audiosocket" | "websocket"
 *     opts.format  "ulaw" | "alaw" | "slin" (any slin rate: 16-bit samples)
 *     opts.frame_bytes  bytes of one 20 ms frame
 *     rtp:         opts.host, opts.port (the app's address: where to send),
 *                  opts.bind (local address), opts.bind_port (default 0: the
 *                  system chooses),
 *                  opts.pt (payload type); slin goes in network order
 *     audiosocket: opts.host, opts.port (connect there), opts.uuid (16
 *                  bytes, sent first as kind 0x01), opts.audio_kind (0x10..)
 *     websocket:   peer:attach(ws) with a server ws (ari.core.server.ws)
 *     wsclient:    opts.host, opts.port, opts.request (the HTTP upgrade
 *                  request), opts.key (its Sec-WebSocket-Key), opts.protocol
 *                  (the subprotocol it asks for; the answer is checked by
 *                  rfc6455_response): a WebSocket client (chan_websocket dialling a
 *                  websocket_client.conf connection); "open" once answered
 *                  101, then on_event("text" | "binary", message) per
 *                  message, peer:send_text(s); close([code]) sends a close
 *   on_event(name, detail): "open" (audiosocket connected), "closed"
 *   (reason: "eof", "hangup", "error: ...", "connect: ...").  Never called
 *   from inside a method.
 *
 *   peer:source(data [, loop])  audio to send, in the format, samples in
 *                               host order (little-endian); nil: silence
 *   peer:flow(on)               send a frame every 20 ms (while bridged)
 *   peer:feed(data)             count a message received elsewhere (ws)
 *   peer:stats() -> table       frames/bytes in and out, energy, digest
 *   peer:local_port(), peer:close()
 *
 * All flowing peers share one 20 ms tick of the loop (catching up at most
 * one frame a tick when the loop was late, counted in late_ticks).
 * RTP packets that are not RTP, or carry a dynamic payload type (above 34),
 * are dropped (dropped_in), as chan_rtp drops them.
 * Received audio: frames, bytes, samples, the sum of squares of the
 * samples (linear 16-bit), the loudest frame's RMS, frames whose RMS is at
 * least 200 ("loud"), and an FNV-1a 64 digest of the samples in host order.
 */
#include "core.h"
#include "buf.h"
#include "server.h"
#include "rfc6455.h"
#include "audio.h"
#include "usock.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#define FM_MT "ari.core.farmedia"
#define FM_MOD_KEY "ari.core.farmedia.mod"
#define FM_TICK_NS 20000000ull
#define FM_LOUD_RMS 200.0
#define FM_MAX_FRAME 8192
#define FM_TCP_BACKLOG (256u * 1024u)

enum { FM_RTP, FM_AS, FM_WS, FM_WSC };
enum { FM_ULAW, FM_ALAW, FM_SLIN };

typedef struct fm_mod fm_mod;
typedef struct fm_peer fm_peer;

struct fm_mod {
  core_loop *c;
  uv_timer_t tick;
  int tick_open, ticking, hook_ran;
  uint64_t t0, ticks;     /* tick clock: ns origin, ticks done */
  fm_peer *peers;         /* every open peer */
  int nflow;
};

typedef struct fm_wreq {
  uv_write_t req;
  fm_peer *p;
  size_t n;
  char data[];
} fm_wreq;

struct fm_peer {
  fm_mod *m;
  fm_peer *prev, *next;
  fm_peer **box;
  int kind, fmt, swap;
  size_t frame_bytes;
  int handles;            /* open uv handles */
  int closed;             /* no more I/O */
  int reported;           /* "closed" event queued or sent */
  int flowing;
  int ev_ref, ws_ref;
  srv_ws *ws;
  usock udp;              /* rtp; udp.poll.data is the peer */
  uv_tcp_t tcp;
  uv_poll_t poll;         /* audiosocket: the connect in progress */
  uv_idle_t idle;         /* delivers queued events outside methods */
  int fd, connected, udp_open, poll_open, tcp_open;
  struct sockaddr_storage to;
  uint8_t pt;
  uint16_t seq;
  uint32_t ts, ssrc;
  uint8_t as_kind, uuid[16];
  buf rx;                 /* audiosocket: bytes of a partial message */
  size_t tcp_pending;
  char *src;
  size_t src_len, src_pos;
  int loop;
  char ev_name[16], ev_detail[128];
  /* wsclient: the upgrade request to send, the handshake's state, frames */
  char *request;
  char accept[RFC6455_ACCEPT_LEN + 1]; /* the Sec-WebSocket-Accept expected */
  char protocol[64];      /* the subprotocol asked for ("": none, or several) */
  int ws_open;
  rfc6455_parser wsp;
  int ev_queued;
  /* stats */
  uint64_t frames_in, bytes_in, samples_in, loud_in, frames_out, bytes_out, late_ticks, dropped_out, dropped_in;
  double sumsq_in, peak_rms_in;
  uint64_t digest_in, digest_out;
  uint64_t first_in_ms, last_in_ms;
};

static uint64_t fm_fnv(uint64_t h, const unsigned char *d, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) { h ^= d[i]; h *= 0x100000001b3ull; }
  return h;
}

/* ---------------------------------------------------------------- events */

static void fm_idle_cb(uv_idle_t *h);

/* Queue an event for on_event, delivered from the idle handle. */
static void fm_event(fm_peer *p, const char *name, const char *detail) {
  if (p->ev_queued || p->reported) return;
  if (strcmp(name, "closed") == 0) p->reported = 1;
  snprintf(p->ev_name, sizeof p->ev_name, "%s", name);
  snprintf(p->ev_detail, sizeof p->ev_detail, "%s", detail ? detail : "");
  p->ev_queued = 1;
  uv_idle_start(&p->idle, fm_idle_cb);
}

static void fm_idle_cb(uv_idle_t *h) {
  fm_peer *p = (fm_peer *)h->data;
  core_loop *c = p->m->c;
  uv_idle_stop(h);
  if (!p->ev_queued) return;
  p->ev_queued = 0;
  if (c->closing || p->ev_ref == LUA_NOREF) return;
  if (!core_push_ref(c, p->ev_ref)) { lua_pop(c->L, 1); return; }
  lua_pushstring(c->L, p->ev_name);
  lua_pushstring(c->L, p->ev_detail);
  core_call(c, 2, 0);
}

/* ---------------------------------------------------------------- receiving */

static void fm_count(fm_peer *p, const unsigned char *d, size_t n, int be) {
  size_t i, ns = 0;
  double s = 0, rms;
  unsigned char tmp[FM_MAX_FRAME];
  if (n == 0) return;
  if (p->fmt == FM_SLIN) {
    n &= ~(size_t)1;
    if (n > sizeof tmp) n = sizeof tmp;
    for (i = 0; i + 1 < n; i += 2) {
      int16_t v;
      if (be) { tmp[i] = d[i + 1]; tmp[i + 1] = d[i]; }
      else { tmp[i] = d[i]; tmp[i + 1] = d[i + 1]; }
      v = (int16_t)(uint16_t)(tmp[i] | (tmp[i + 1] << 8));
      s += (double)v * v;
    }
    ns = n / 2;
    p->digest_in = fm_fnv(p->digest_in, tmp, n);
  } else {
    for (i = 0; i < n; i++) {
      double v = p->fmt == FM_ULAW ? audio_ulaw_decode(d[i]) : audio_alaw_decode(d[i]);
      s += v * v;
    }
    ns = n;
    p->digest_in = fm_fnv(p->digest_in, d, n);
  }
  if (ns == 0) return;
  rms = sqrt(s / (double)ns);
  p->frames_in++;
  p->bytes_in += n;
  p->samples_in += ns;
  p->sumsq_in += s;
  if (rms > p->peak_rms_in) p->peak_rms_in = rms;
  if (rms >= FM_LOUD_RMS) p->loud_in++;
  p->last_in_ms = uv_now(&p->m->c->uv);
  if (p->frames_in == 1) p->first_in_ms = p->last_in_ms;
}

static void fm_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  static char slab[65536];
  (void)h; (void)suggested;
  b->base = slab;
  b->len = sizeof slab;
}

static void fm_udp_recv(usock *u, const unsigned char *d, size_t n, const struct sockaddr *addr, int truncated) {
  fm_peer *p = (fm_peer *)u->poll.data;
  rtp_packet pk;
  (void)addr;
  if (p->closed) return;
  if (truncated || rtp_parse(d, n, &pk) != 0) { p->dropped_in++; return; }
  /* chan_rtp maps no dynamic payload type on receive (only the static
   * table, types up to 34): Asterisk drops what comes with one (slin16's
   * 118, ...), and so does the simulator */
  if (pk.pt > 34) { p->dropped_in++; return; }
  fm_count(p, pk.payload, pk.len, p->swap);
}

static void fm_close(fm_peer *p);

static void fm_as_parse(fm_peer *p) {
  size_t pos = 0;
  while (p->rx.len - pos >= 3 && !p->closed) {
    const unsigned char *d = (const unsigned char *)p->rx.p + pos;
    unsigned kind = d[0];
    size_t len = ((size_t)d[1] << 8) | d[2];
    if (kind == 0x00) { fm_event(p, "closed", "hangup"); fm_close(p); break; }
    if (kind < 0x10 || kind > 0x18 || len < 1) {
      char msg[64];
      snprintf(msg, sizeof msg, "error: message kind 0x%02x", kind);
      fm_event(p, "closed", msg);
      fm_close(p);
      break;
    }
    if (p->rx.len - pos < 3 + len) break;
    fm_count(p, d + 3, len, 0);
    pos += 3 + len;
  }
  if (!p->closed && pos > 0) buf_consume(&p->rx, pos);
}

static int fm_tcp_send(fm_peer *p, const unsigned char *hdr, size_t hn, const char *d, size_t n);

/* A masked frame to the server (wsclient). */
static int fm_wsc_send(fm_peer *p, int op, const void *d, size_t n) {
  static buf fb = BUF_INIT;
  unsigned char mask[4];
  uint32_t r = (uint32_t)rand();
  int rc;
  memcpy(mask, &r, 4);
  fb.len = 0;
  if (rfc6455_frame_add(&fb, op, d, n, mask) != 0) return -1;
  rc = fm_tcp_send(p, (const unsigned char *)fb.p, fb.len, "", 0);
  buf_shrink(&fb, 65536);
  return rc;
}

/* wsclient: the handshake's answer, then frames.  Text and binary messages
 * go to on_event("text" | "binary", data) at once (this runs from the read
 * callback, never inside a method). */
static void fm_wsc_parse(fm_peer *p) {
  core_loop *c = p->m->c;
  size_t pos = 0;
  if (!p->ws_open) {
    char err[200];
    int status;
    long hl = rfc6455_response(p->rx.p, p->rx.len, p->accept, p->protocol[0] ? p->protocol : NULL, &status, err,
                               sizeof err);
    if (hl == 0) return;
    if (hl < 0) {
      char msg[128];
      snprintf(msg, sizeof msg, "handshake: %.100s", err);
      fm_event(p, "closed", msg);
      fm_close(p);
      return;
    }
    pos = (size_t)hl;
    p->ws_open = 1;
    rfc6455_init(&p->wsp, RFC6455_CLIENT, 1u << 20);
    fm_event(p, "open", "");
  }
  while (!p->closed && pos < p->rx.len) {
    rfc6455_frame f;
    int r = rfc6455_parse(&p->wsp, (unsigned char *)p->rx.p + pos, p->rx.len - pos, &f);
    if (r == 0) break;
    if (r < 0) { fm_event(p, "closed", "error: websocket protocol"); fm_close(p); return; }
    pos += f.size;
    if (f.op == RFC6455_PING) { fm_wsc_send(p, RFC6455_PONG, f.data, f.len); continue; }
    if (f.op == RFC6455_PONG) continue;
    if (f.op == RFC6455_CLOSE) {
      char msg[32];
      unsigned char code[2] = {0x03, 0xe8};
      fm_wsc_send(p, RFC6455_CLOSE, code, 2);
      snprintf(msg, sizeof msg, "close %d", f.close_code);
      fm_event(p, "closed", msg);
      fm_close(p);
      return;
    }
    /* data frames: whole messages only (Asterisk's peers send them whole) */
    if (!f.last) continue;
    if (c->closing || p->ev_ref == LUA_NOREF) continue;
    if (!core_push_ref(c, p->ev_ref)) { lua_pop(c->L, 1); continue; }
    lua_pushstring(c->L, f.msg_op == RFC6455_TEXT ? "text" : "binary");
    lua_pushlstring(c->L, (const char *)f.data, f.len);
    core_call(c, 2, 0);
  }
  if (!p->closed && pos > 0) buf_consume(&p->rx, pos);
}

static void fm_tcp_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *b) {
  fm_peer *p = (fm_peer *)h->data;
  if (p->closed) return;
  if (nread < 0) {
    fm_event(p, "closed", nread == UV_EOF ? "eof" : uv_strerror((int)nread));
    fm_close(p);
    return;
  }
  if (nread == 0) return;
  if (buf_add(&p->rx, b->base, (size_t)nread) != 0) {
    fm_event(p, "closed", "error: out of memory");
    fm_close(p);
    return;
  }
  if (p->kind == FM_WSC) fm_wsc_parse(p);
  else fm_as_parse(p);
}

/* ---------------------------------------------------------------- sending */

static void fm_tcp_written(uv_write_t *req, int status) {
  fm_wreq *w = (fm_wreq *)req;
  fm_peer *p = w->p;
  p->tcp_pending -= w->n;
  free(w);
  if (status < 0 && !p->closed) {
    fm_event(p, "closed", uv_strerror(status));
    fm_close(p);
  }
}

static int fm_tcp_send(fm_peer *p, const unsigned char *hdr, size_t hn, const char *d, size_t n) {
  fm_wreq *w;
  uv_buf_t b;
  if (p->tcp_pending > FM_TCP_BACKLOG) return -1;
  w = malloc(sizeof *w + hn + n);
  if (w == NULL) return -1;
  memcpy(w->data, hdr, hn);
  memcpy(w->data + hn, d, n);
  w->p = p;
  w->n = hn + n;
  b = uv_buf_init(w->data, (unsigned)(hn + n));
  if (uv_write(&w->req, (uv_stream_t *)&p->tcp, &b, 1, fm_tcp_written) != 0) { free(w); return -1; }
  p->tcp_pending += w->n;
  return 0;
}

static void fm_frame(fm_peer *p, unsigned char *out) {
  size_t n = p->frame_bytes, got = 0;
  unsigned char fill = p->fmt == FM_ULAW ? 0xff : (p->fmt == FM_ALAW ? 0xd5 : 0);
  while (got < n && p->src != NULL && p->src_len > 0) {
    size_t k = p->src_len - p->src_pos;
    if (k > n - got) k = n - got;
    memcpy(out + got, p->src + p->src_pos, k);
    got += k;
    p->src_pos += k;
    if (p->src_pos >= p->src_len) {
      if (p->loop) p->src_pos = 0;
      else { free(p->src); p->src = NULL; p->src_len = p->src_pos = 0; }
    }
  }
  if (got < n) memset(out + got, fill, n - got);
}

static void fm_send_one(fm_peer *p) {
  unsigned char pkt[12 + FM_MAX_FRAME];
  unsigned char *f = pkt + 12;
  size_t n = p->frame_bytes, i;
  int ok = 0;
  fm_frame(p, f);
  p->digest_out = fm_fnv(p->digest_out, f, n);
  if (p->kind == FM_RTP) {
    if (p->swap)
      for (i = 0; i + 1 < n; i += 2) { unsigned char t = f[i]; f[i] = f[i + 1]; f[i + 1] = t; }
    rtp_header(pkt, p->pt & 0x7f, 0, p->seq, p->ts, p->ssrc);
    p->seq++;
    p->ts += (uint32_t)(p->fmt == FM_SLIN ? n / 2 : n);
    ok = usock_send(&p->udp, pkt, 12 + n, (const struct sockaddr *)&p->to) == 0;
  } else if (p->kind == FM_WSC) {
    ok = p->ws_open && fm_wsc_send(p, RFC6455_BINARY, f, n) == 0;
  } else if (p->kind == FM_AS) {
    unsigned char hdr[3];
    hdr[0] = p->as_kind; hdr[1] = (unsigned char)(n >> 8); hdr[2] = (unsigned char)n;
    ok = p->connected && fm_tcp_send(p, hdr, 3, (const char *)f, n) == 0;
  } else if (p->ws != NULL && p->ws->conn != NULL) {
    srv_conn *k = p->ws->conn;
    if (!k->closed && !k->close_sent && k->obuf.len < FM_TCP_BACKLOG &&
        rfc6455_frame_add(&k->obuf, RFC6455_BINARY, f, n, NULL) == 0) {
      srv_flush(k);
      ok = 1;
    }
  }
  if (ok) { p->frames_out++; p->bytes_out += n; }
  else p->dropped_out++;
}

static void fm_tick_cb(uv_timer_t *t) {
  fm_mod *m = (fm_mod *)t->data;
  uint64_t now = uv_hrtime(), due, next_ns, delay;
  int frames, late, i;
  fm_peer *p, *nx;
  due = (now - m->t0) / FM_TICK_NS;               /* ticks that should have run */
  frames = due > m->ticks + 1 ? 2 : 1;            /* catch up one at most */
  late = due > m->ticks + 1;
  if (due > m->ticks + 2) m->ticks = due - 2;     /* forget what cannot be caught up */
  for (p = m->peers; p != NULL; p = nx) {
    nx = p->next;
    if (!p->flowing || p->closed) continue;
    if (late) p->late_ticks++;
    for (i = 0; i < frames && !p->closed; i++) fm_send_one(p);
  }
  m->ticks += (uint64_t)frames;
  if (m->nflow == 0) { uv_timer_stop(t); m->ticking = 0; return; }
  next_ns = m->t0 + (m->ticks + 1) * FM_TICK_NS;
  now = uv_hrtime();
  delay = next_ns > now ? (next_ns - now + 999999) / 1000000 : 0;
  uv_timer_start(t, fm_tick_cb, delay, 0);
}

static void fm_flow(fm_peer *p, int on) {
  fm_mod *m = p->m;
  if (on == p->flowing || (on && p->closed)) return;
  p->flowing = on;
  m->nflow += on ? 1 : -1;
  if (on && !m->ticking && m->tick_open) {
    m->ticking = 1;
    m->t0 = uv_hrtime();
    m->ticks = 0;
    uv_timer_start(&m->tick, fm_tick_cb, 20, 0);
  }
}

/* ---------------------------------------------------------------- lifetime */

static void fm_peer_free(fm_peer *p) {
  fm_mod *m = p->m;
  if (p->prev) p->prev->next = p->next; else m->peers = p->next;
  if (p->next) p->next->prev = p->prev;
  if (p->box) *p->box = NULL;
  buf_free(&p->rx);
  free(p->src);
  free(p->request);
  free(p);
  if (m->hook_ran && m->peers == NULL && !m->tick_open) free(m);
}

static void fm_handle_closed(uv_handle_t *h) {
  fm_peer *p = (fm_peer *)h->data;
  if (--p->handles == 0 && p->box == NULL) fm_peer_free(p);
}

static void fm_close(fm_peer *p) {
  if (p->closed) return;
  fm_flow(p, 0);
  p->closed = 1;
  if (p->udp_open) { p->udp_open = 0; usock_close(&p->udp, fm_handle_closed); }
  if (p->poll_open) { p->poll_open = 0; uv_close((uv_handle_t *)&p->poll, fm_handle_closed); }
  if (p->fd >= 0) { close(p->fd); p->fd = -1; }  /* a connect in progress: the poll does not own it */
  if (p->tcp_open) { p->tcp_open = 0; uv_close((uv_handle_t *)&p->tcp, fm_handle_closed); }
}

static fm_peer *fm_check(lua_State *L) {
  fm_peer **box = (fm_peer **)luaL_checkudata(L, 1, FM_MT);
  return *box;
}

static int fm_gc(lua_State *L) {
  fm_peer **box = (fm_peer **)luaL_checkudata(L, 1, FM_MT);
  fm_peer *p = *box;
  if (p == NULL) return 0;
  *box = NULL;
  p->box = NULL;
  fm_close(p);
  core_unref(p->m->c, p->ev_ref);
  core_unref(p->m->c, p->ws_ref);
  p->ev_ref = p->ws_ref = LUA_NOREF;
  p->ws = NULL;
  uv_close((uv_handle_t *)&p->idle, fm_handle_closed);
  return 0;
}

/* ---------------------------------------------------------------- audiosocket connect */

static void fm_poll_cb(uv_poll_t *h, int status, int events) {
  fm_peer *p = (fm_peer *)h->data;
  int err = 0;
  socklen_t len = sizeof err;
  unsigned char hello[19];
  (void)events;
  if (p->closed) return;
  uv_poll_stop(h);
  if (status < 0) err = -status;
  else if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) {
    char msg[96];
    snprintf(msg, sizeof msg, "connect: %s", strerror(err));
    fm_event(p, "closed", msg);
    fm_close(p);
    return;
  }
  p->poll_open = 0;
  uv_close((uv_handle_t *)&p->poll, fm_handle_closed); /* the poll is done with the fd */
  if (uv_tcp_init(&p->m->c->uv, &p->tcp) != 0) { fm_event(p, "closed", "connect: uv_tcp_init"); fm_close(p); return; }
  p->tcp.data = p;
  p->handles++;
  p->tcp_open = 1;
  if (uv_tcp_open(&p->tcp, p->fd) != 0) {
    fm_event(p, "closed", "connect: uv_tcp_open");
    fm_close(p);
    return;
  }
  p->connected = 1;
  p->fd = -1;
  uv_tcp_nodelay(&p->tcp, 1);
  if (p->kind == FM_WSC) {
    fm_tcp_send(p, (const unsigned char *)p->request, strlen(p->request), "", 0);
    uv_read_start((uv_stream_t *)&p->tcp, fm_alloc, fm_tcp_read);
    return; /* "open" once the server has answered 101 */
  }
  hello[0] = 0x01; hello[1] = 0x00; hello[2] = 0x10;
  memcpy(hello + 3, p->uuid, 16);
  fm_tcp_send(p, hello, 19, "", 0);
  uv_read_start((uv_stream_t *)&p->tcp, fm_alloc, fm_tcp_read);
  fm_event(p, "open", "");
}

static int fm_addr(const char *host, int port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) return 0;
  return -1;
}

/* ---------------------------------------------------------------- Lua */

static fm_mod *fm_get_mod(lua_State *L);

static int fm_new(lua_State *L) {
  fm_mod *m = fm_get_mod(L);
  const char *kind, *fmt, *host;
  fm_peer *p, **box;
  int port;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "kind"); kind = luaL_checkstring(L, -1); lua_pop(L, 1);
  lua_getfield(L, 1, "format"); fmt = luaL_optstring(L, -1, "slin"); lua_pop(L, 1);
  lua_getfield(L, 1, "host"); host = luaL_optstring(L, -1, "127.0.0.1"); lua_pop(L, 1);
  lua_getfield(L, 1, "port"); port = (int)luaL_optinteger(L, -1, 0); lua_pop(L, 1);
  if (m == NULL || m->hook_ran) return luaL_error(L, "farmedia: shutting down");
  p = calloc(1, sizeof *p);
  if (p == NULL) return luaL_error(L, "out of memory");
  p->m = m;
  p->fd = -1;
  p->ev_ref = p->ws_ref = LUA_NOREF;
  p->digest_in = p->digest_out = 0xcbf29ce484222325ull;
  p->kind = strcmp(kind, "rtp") == 0 ? FM_RTP : strcmp(kind, "audiosocket") == 0 ? FM_AS
          : strcmp(kind, "wsclient") == 0 ? FM_WSC : FM_WS;
  p->fmt = strcmp(fmt, "ulaw") == 0 ? FM_ULAW : strcmp(fmt, "alaw") == 0 ? FM_ALAW : FM_SLIN;
  lua_getfield(L, 1, "frame_bytes");
  p->frame_bytes = (size_t)luaL_optinteger(L, -1, p->fmt == FM_SLIN ? 320 : 160);
  lua_pop(L, 1);
  if (p->frame_bytes == 0 || p->frame_bytes > FM_MAX_FRAME) { free(p); return luaL_error(L, "farmedia: bad frame_bytes"); }
  p->swap = p->kind == FM_RTP && p->fmt == FM_SLIN;
  lua_getfield(L, 1, "pt"); p->pt = (uint8_t)luaL_optinteger(L, -1, 0); lua_pop(L, 1);
  lua_getfield(L, 1, "audio_kind"); p->as_kind = (uint8_t)luaL_optinteger(L, -1, 0x10); lua_pop(L, 1);
  p->ssrc = (uint32_t)rand() ^ ((uint32_t)uv_hrtime() << 8);
  p->seq = (uint16_t)rand();
  p->ts = (uint32_t)rand();
  if (p->kind == FM_WSC) {
    size_t rl = 0;
    const char *rq;
    lua_getfield(L, 1, "request");
    rq = luaL_optlstring(L, -1, "", &rl);
    p->request = malloc(rl + 1);
    if (p->request == NULL) { lua_pop(L, 1); free(p); return luaL_error(L, "out of memory"); }
    memcpy(p->request, rq, rl + 1);
    lua_pop(L, 1);
    lua_getfield(L, 1, "key");
    rq = luaL_optlstring(L, -1, "", &rl);
    rfc6455_accept(rq, rl, p->accept);
    lua_pop(L, 1);
    lua_getfield(L, 1, "protocol");
    rq = luaL_optlstring(L, -1, "", &rl);
    if (rl < sizeof p->protocol && strchr(rq, ',') == NULL) memcpy(p->protocol, rq, rl + 1);
    lua_pop(L, 1);
  }
  if (p->kind == FM_AS) {
    size_t ul = 0;
    const char *u;
    lua_getfield(L, 1, "uuid");
    u = luaL_optlstring(L, -1, "", &ul);
    if (ul == 16) memcpy(p->uuid, u, 16);
    lua_pop(L, 1);
  }
  if (p->kind != FM_WS && fm_addr(host, port, &p->to) != 0) {
    free(p->request);
    free(p);
    lua_pushnil(L);
    lua_pushfstring(L, "bad address %s:%d", host, port);
    return 2;
  }
  /* link it first: from here fm_handle_closed may free it */
  p->next = m->peers;
  if (m->peers) m->peers->prev = p;
  m->peers = p;
  uv_idle_init(&m->c->uv, &p->idle);
  p->idle.data = p;
  p->handles = 1;
  box = (fm_peer **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = p;
  p->box = box;
  luaL_setmetatable(L, FM_MT);
  if (lua_isfunction(L, 2)) p->ev_ref = core_ref(L, 2);
  if (p->kind == FM_RTP) {
    struct sockaddr_storage local;
    const char *bind = host;
    int r;
    int bport;
    lua_getfield(L, 1, "bind_port");
    bport = (int)luaL_optinteger(L, -1, 0);
    lua_pop(L, 1);
    lua_getfield(L, 1, "bind");
    if (lua_isstring(L, -1)) bind = lua_tostring(L, -1);
    r = fm_addr(bind, bport, &local);
    lua_pop(L, 1);
    if (r != 0) { lua_pushnil(L); lua_pushstring(L, "farmedia: udp"); return 2; }
    r = usock_open(&p->udp, &m->c->uv, (const struct sockaddr *)&local, fm_udp_recv);
    if (p->udp.inited) {
      p->udp.poll.data = p;
      p->handles++;
      p->udp_open = 1;
    }
    if (r != 0) { fm_close(p); lua_pushnil(L); lua_pushstring(L, uv_strerror(r)); return 2; }
  } else if (p->kind == FM_AS || p->kind == FM_WSC) {
    int fd = socket(p->to.ss_family, SOCK_STREAM, 0), r, one = 1;
    /* a loopback connect completes (or is refused) at once: do it blocking,
     * so that a refused one fails the request as Asterisk's does */
    int loopback = (p->to.ss_family == AF_INET &&
                    (ntohl(((struct sockaddr_in *)&p->to)->sin_addr.s_addr) >> 24) == 127) ||
                   (p->to.ss_family == AF_INET6 &&
                    IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&p->to)->sin6_addr));
    if (fd < 0 || (!loopback && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0)) {
      if (fd >= 0) close(fd);
      lua_pushnil(L); lua_pushstring(L, strerror(errno)); return 2;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    r = connect(fd, (const struct sockaddr *)&p->to,
                p->to.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    if (r == 0 && loopback) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (r != 0 && errno != EINPROGRESS) {
      /* refused at once (a loopback port nobody listens on): as Asterisk's request fails */
      const char *e = strerror(errno);
      close(fd);
      lua_pushnil(L);
      lua_pushstring(L, e);
      return 2;
    }
    p->fd = fd;
    if (uv_poll_init(&m->c->uv, &p->poll, fd) != 0) {
      close(fd); p->fd = -1;
      lua_pushnil(L); lua_pushstring(L, "farmedia: poll"); return 2;
    }
    p->poll.data = p;
    p->handles++;
    p->poll_open = 1;
    uv_poll_start(&p->poll, UV_WRITABLE, fm_poll_cb);
  }
  return 1;
}

static int fm_source(lua_State *L) {
  fm_peer *p = fm_check(L);
  size_t n = 0;
  const char *d = luaL_optlstring(L, 2, NULL, &n);
  char *copy = NULL;
  if (p == NULL) return 0;
  if (d != NULL && n > 0) {
    copy = malloc(n);
    if (copy == NULL) return luaL_error(L, "out of memory");
    memcpy(copy, d, n);
  }
  free(p->src);
  p->src = copy;
  p->src_len = copy ? n : 0;
  p->src_pos = 0;
  p->loop = lua_toboolean(L, 3);
  return 0;
}

static int fm_flowf(lua_State *L) {
  fm_peer *p = fm_check(L);
  if (p != NULL) fm_flow(p, lua_toboolean(L, 2));
  return 0;
}

static int fm_feed(lua_State *L) {
  fm_peer *p = fm_check(L);
  size_t n;
  const char *d = luaL_checklstring(L, 2, &n);
  if (p != NULL && !p->closed) fm_count(p, (const unsigned char *)d, n, 0);
  return 0;
}

static int fm_attach(lua_State *L) {
  fm_peer *p = fm_check(L);
  srv_ws *w = (srv_ws *)luaL_checkudata(L, 2, SRV_WS_MT);
  if (p == NULL) return 0;
  core_unref(p->m->c, p->ws_ref);
  p->ws_ref = core_ref(L, 2);
  p->ws = w;
  return 0;
}

static int fm_local_port(lua_State *L) {
  fm_peer *p = fm_check(L);
  struct sockaddr_storage ss;
  char host[64] = "";
  if (p == NULL || p->kind != FM_RTP || p->closed || usock_getsockname(&p->udp, &ss) != 0) return 0;
  if (ss.ss_family == AF_INET) {
    uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof host);
    lua_pushinteger(L, ntohs(((struct sockaddr_in *)&ss)->sin_port));
  } else {
    uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof host);
    lua_pushinteger(L, ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
  }
  lua_pushstring(L, host);
  return 2;
}

static void fm_setn(lua_State *L, const char *k, double v) {
  if (v == floor(v) && fabs(v) < 9e15) lua_pushinteger(L, (lua_Integer)v);
  else lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

static int fm_stats(lua_State *L) {
  fm_peer *p = fm_check(L);
  char hex[17];
  if (p == NULL) return 0;
  lua_createtable(L, 0, 16);
  fm_setn(L, "frames_in", (double)p->frames_in);
  fm_setn(L, "bytes_in", (double)p->bytes_in);
  fm_setn(L, "samples_in", (double)p->samples_in);
  fm_setn(L, "loud_frames_in", (double)p->loud_in);
  lua_pushnumber(L, p->samples_in ? sqrt(p->sumsq_in / (double)p->samples_in) : 0.0);
  lua_setfield(L, -2, "rms_in");
  lua_pushnumber(L, p->peak_rms_in);
  lua_setfield(L, -2, "peak_rms_in");
  snprintf(hex, sizeof hex, "%016llx", (unsigned long long)p->digest_in);
  lua_pushstring(L, hex);
  lua_setfield(L, -2, "digest_in");
  snprintf(hex, sizeof hex, "%016llx", (unsigned long long)p->digest_out);
  lua_pushstring(L, hex);
  lua_setfield(L, -2, "digest_out");
  fm_setn(L, "first_in_ms", (double)p->first_in_ms);
  fm_setn(L, "last_in_ms", (double)p->last_in_ms);
  fm_setn(L, "frames_out", (double)p->frames_out);
  fm_setn(L, "bytes_out", (double)p->bytes_out);
  fm_setn(L, "dropped_out", (double)p->dropped_out);
  fm_setn(L, "dropped_in", (double)p->dropped_in);
  fm_setn(L, "late_ticks", (double)p->late_ticks);
  lua_pushboolean(L, p->closed);
  lua_setfield(L, -2, "closed");
  return 1;
}

static int fm_send_text(lua_State *L) {
  fm_peer *p = fm_check(L);
  size_t n;
  const char *d = luaL_checklstring(L, 2, &n);
  lua_pushboolean(L, p != NULL && !p->closed && p->kind == FM_WSC && p->ws_open &&
                     fm_wsc_send(p, RFC6455_TEXT, d, n) == 0);
  return 1;
}

static int fm_closef(lua_State *L) {
  fm_peer *p = fm_check(L);
  if (p != NULL && p->kind == FM_WSC && p->ws_open && !p->closed) {
    /* the closing handshake's first half, written at once (close follows) */
    static buf cb = BUF_INIT;
    unsigned char mask[4] = {1, 2, 3, 4};
    int code = (int)luaL_optinteger(L, 2, 1000);
    cb.len = 0;
    if (rfc6455_close_add(&cb, code, "", 0, mask) == 0) {
      uv_buf_t b = uv_buf_init(cb.p, (unsigned)cb.len);
      uv_try_write((uv_stream_t *)&p->tcp, &b, 1);
    }
  }
  if (p != NULL) {
    p->reported = 1; /* closed by its owner: no event */
    p->ev_queued = 0;
    fm_close(p);
    /* let go of the handler and the ws now: the handler often holds the
     * peer itself (a cycle through the registry that __gc alone would
     * never see) */
    core_unref(p->m->c, p->ev_ref);
    core_unref(p->m->c, p->ws_ref);
    p->ev_ref = p->ws_ref = LUA_NOREF;
    p->ws = NULL;
  }
  return 0;
}

static void fm_tick_closed(uv_handle_t *h) {
  fm_mod *m = (fm_mod *)h->data;
  m->tick_open = 0;
  if (m->peers == NULL) free(m);
}

static void fm_shutdown(core_loop *c, void *ud) {
  fm_mod *m = (fm_mod *)ud;
  fm_peer *p, *nx;
  (void)c;
  m->hook_ran = 1;
  for (p = m->peers; p != NULL; p = nx) {
    nx = p->next;
    p->reported = 1;
    p->ev_queued = 0;
    fm_close(p);
    if (!uv_is_closing((uv_handle_t *)&p->idle)) {
      uv_idle_stop(&p->idle);
      if (p->box) { *p->box = NULL; p->box = NULL; }
      uv_close((uv_handle_t *)&p->idle, fm_handle_closed);
    }
  }
  if (m->tick_open && !uv_is_closing((uv_handle_t *)&m->tick)) uv_close((uv_handle_t *)&m->tick, fm_tick_closed);
}

static fm_mod *fm_get_mod(lua_State *L) {
  fm_mod *m;
  lua_getfield(L, LUA_REGISTRYINDEX, FM_MOD_KEY);
  m = (fm_mod *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (m != NULL) return m;
  m = calloc(1, sizeof *m);
  if (m == NULL) return NULL;
  m->c = core_get(L);
  uv_timer_init(&m->c->uv, &m->tick);
  m->tick.data = m;
  m->tick_open = 1;
  core_on_shutdown(m->c, fm_shutdown, m);
  lua_pushlightuserdata(L, m);
  lua_setfield(L, LUA_REGISTRYINDEX, FM_MOD_KEY);
  return m;
}

void farmedia_open(lua_State *L) {
  static const luaL_Reg m[] = {
    {"source", fm_source}, {"flow", fm_flowf}, {"feed", fm_feed}, {"attach", fm_attach}, {"send_text", fm_send_text},
    {"local_port", fm_local_port}, {"stats", fm_stats}, {"close", fm_closef}, {"__gc", fm_gc},
    {NULL, NULL}};
  core_newmeta(L, FM_MT, m);
  lua_pushcfunction(L, fm_new);
  lua_setfield(L, -2, "farmedia");
}
