/* media.c - external media streams (docs/media.md): the sockets, queues and
 * pacing behind lua/ari/media.lua, on the core's loop, no thread.
 *
 *   core.media_new(opts, on_event) -> stream
 *     opts: transport ("rtp" | "audiosocket" | "websocket"), format,
 *     frame_ms (20), queue_ms (2000), in_queue_ms (1000), bind (address),
 *     uuid (audiosocket), stall_ms (10000; TCP: a peer that takes no output
 *     for this long while some is pending closes the stream, reason
 *     "stalled"; 0 never)
 *     on_event(kind): "data" (audio arrived while want(true)), "open" (the
 *     transport is up), "closed", "drained" (the output queue emptied while
 *     want_drain(true)), "text" (a WebSocket text message: stream:text())
 *   stream:port() -> the local port (rtp: UDP, audiosocket: TCP listener)
 *   stream:set_peer(ip, port)          rtp: where Asterisk listens
 *   stream:ws_connect(ip, port, path, extra_headers)   websocket (server type)
 *   stream:read() -> data, ms | nil
 *   stream:want(bool [, timeout_ms]), stream:want_drain(bool)
 *     want(true, timeout_ms): a "timeout" event comes when no audio has come
 *     within timeout_ms (want cleared); want(false) or audio disarms it
 *   stream:write(data) -> true | false, "overflow" | "closed"
 *   stream:flush() -> ms dropped;  stream:queued() -> ms
 *   stream:send_text(s)                websocket control messages
 *   stream:text() -> the oldest unread text message | nil
 *   stream:state() -> "opening" | "open" | "closed", reason
 *   stream:close([reason]);  stream:stats() -> table
 *
 * Output goes out on one shared tick (MEDIA_TICK_MS) for every stream: each
 * stream sends the frames that are due by its own clock (next_due); a
 * whole frame written while one is due goes at once (stream:write).
 */
#include "audio.h"
#include "buf.h"
#include "core.h"
#include "rfc6455.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "media.h"

/* ---------------------------------------------------------------- lifetime */

void ms_unref(mstream *s) {
  int i;
  if (--s->refs > 0) return;
  buf_free(&s->ibuf);
  buf_free(&s->in);
  buf_free(&s->out);
  for (i = 0; i < MEDIA_MAX_TEXT; i++) buf_free(&s->text[i]);
  free(s);
}

static void ms_handle_closed(uv_handle_t *h) { ms_unref((mstream *)h->data); }

static void ms_tcp_closed(uv_handle_t *h) {
  mstream *s = (mstream *)h->data;
  free(h);
  ms_unref(s);
}

void ms_event(mstream *s, const char *kind) {
  core_loop *c = s->c;
  if (c->closing || s->cb_ref == LUA_NOREF) return;
  if (!core_push_ref(c, s->cb_ref)) { lua_pop(c->L, 1); return; }
  s->refs++;
  lua_pushstring(c->L, kind);
  core_call(c, 1, 0);
  ms_unref(s);
}

static void ms_unlink(mstream *s) {
  media_mod *m = s->mod;
  if (m == NULL) return;
  if (s->prev) s->prev->next = s->next; else m->streams = s->next;
  if (s->next) s->next->prev = s->prev;
  s->prev = s->next = NULL;
  s->mod = NULL;
  if (m->streams == NULL && m->tick_on) { uv_timer_stop(&m->tick); m->tick_on = 0; }
}

/* Close the sockets; the stream stays readable (what is queued) until gc. */
void ms_close(mstream *s, const char *reason, int notify) {
  if (s->state == S_CLOSED) return;
  s->state = S_CLOSED;
  snprintf(s->reason, sizeof s->reason, "%s", reason);
  ms_unlink(s);
  if (s->udp_open) { s->udp_open = 0; usock_close(&s->udp, ms_handle_closed); }
  if (s->lis_open) { s->lis_open = 0; uv_close((uv_handle_t *)&s->lis, ms_handle_closed); }
  if (s->tcp_open) { s->tcp_open = 0; uv_close((uv_handle_t *)s->tcp, ms_tcp_closed); }
  if (s->rtimer_open) { s->rtimer_open = 0; uv_close((uv_handle_t *)&s->rtimer, ms_handle_closed); }
  s->out_off = s->out.len = 0;
  if (notify) ms_event(s, "closed");
}

/* ---------------------------------------------------------------- input queue */

void in_push(mstream *s, const unsigned char *p, size_t n) {
  unsigned char hdr[4];
  if (n == 0 || s->state == S_CLOSED) return;
  /* full: the oldest goes */
  while (s->in_bytes > 0 && s->in_bytes + n > s->in_max) {
    uint32_t len;
    memcpy(&len, s->in.p + s->in_off, 4);
    s->in_off += 4 + len;
    s->in_bytes -= len;
    s->dropped_in++;
  }
  if (s->in_off > 0 && s->in_off == s->in.len) { s->in.len = 0; s->in_off = 0; }
  if (s->in_off > 4096 && s->in_off * 2 > s->in.len) { buf_consume(&s->in, s->in_off); s->in_off = 0; }
  {
    uint32_t len = (uint32_t)n;
    memcpy(hdr, &len, 4);
  }
  if (buf_add(&s->in, hdr, 4) != 0) { s->dropped_in++; return; }
  if (buf_add(&s->in, p, n) != 0) { s->in.len -= 4; s->dropped_in++; return; }
  s->in_bytes += n;
  s->frames_in++;
  s->bytes_in += (lua_Integer)n;
  if (s->want) {
    /* [perf] the read timer is left armed: it fires for nothing once want is
     * off, and the next want(true, timeout) only moves rdeadline */
    s->want = 0;
    ms_event(s, "data");
  }
}

/* RTP payloads in order: to host byte order, queued. */
static void rtp_deliver(void *ud, const unsigned char *p, size_t n) {
  mstream *s = (mstream *)ud;
  if (s == NULL) return;
  if (audio_bps(s->fmt) == 2) {
    unsigned char tmp[RTP_MAX_PAYLOAD];
    n &= ~(size_t)1;
    memcpy(tmp, p, n);
    audio_swap16(tmp, n);
    in_push(s, tmp, n);
  } else {
    in_push(s, p, n);
  }
}

/* ---------------------------------------------------------------- output */


static int default_pt(int fmt) {
  switch (fmt) {
  case AUDIO_ULAW: return 0;
  case AUDIO_ALAW: return 8;
  case AUDIO_SLIN16: return 118;
  default: return 11;
  }
}

/* Send one frame of n bytes. */
static void send_frame(mstream *s, unsigned char *p, size_t n) {
  if (s->transport == T_RTP) {
    unsigned char pkt[RTP_HEADER + RTP_MAX_PAYLOAD];
    if (!s->have_peer || n > RTP_MAX_PAYLOAD) { s->dropped_out++; return; }
    rtp_header(pkt, s->pt_out, s->frames_out == 0, s->tx_seq++, s->tx_ts, s->ssrc);
    s->tx_ts += (uint32_t)(n / (size_t)audio_bps(s->fmt));
    memcpy(pkt + RTP_HEADER, p, n);
    if (audio_bps(s->fmt) == 2) audio_swap16(pkt + RTP_HEADER, n);
    if (usock_send(&s->udp, pkt, RTP_HEADER + n, (const struct sockaddr *)&s->peer) < 0) { s->dropped_out++; return; }
  } else if (s->transport == T_AS) {
    unsigned char h[3];
    as_header(h, s->fmt == AUDIO_SLIN16 ? AS_AUDIO_SLIN16 : AS_AUDIO, n);
    if (tcp_send(s, h, 3, p, n) != 0) { s->dropped_out++; return; }
  } else {
    unsigned char h[RFC6455_MAX_HEADER], mask[4], tmp[8192];
    size_t hl;
    if (n > sizeof tmp) { s->dropped_out++; return; }
    uv_random(NULL, NULL, mask, 4, 0, NULL);
    hl = rfc6455_header(h, RFC6455_BINARY, 1, n, s->ws_server ? NULL : mask);
    memcpy(tmp, p, n);
    if (!s->ws_server) rfc6455_mask(tmp, n, mask, 0);
    if (tcp_send(s, h, hl, tmp, n) != 0) { s->dropped_out++; return; }
  }
  s->frames_out++;
  s->bytes_out += (lua_Integer)n;
}

/* Send what is due by s's clock.  from_write: called by stream:write (a
 * frame written when one is due goes at once, not at the next tick: under
 * load the tick can be held up by a burst of input), which never calls into
 * Lua: a "drained" it would owe is left to the next tick. */
static void ms_pace(mstream *s, uint64_t now, int from_write) {
  int sent = 0;
  if (s->state != S_OPEN || s->xoff) return;
  if (s->out.len - s->out_off == 0) {
    if (s->want_drain && !from_write) { s->want_drain = 0; ms_event(s, "drained"); return; }
    /* AudioSocket: Asterisk's channel reads the socket blocking (its bridge
     * stalls without input), so silence goes when there is nothing to send */
    if (s->transport == T_AS && s->uuid_ok) {
      unsigned char sil[8192];
      if (s->next_due + 3 * (uint64_t)s->frame_ms < now) s->next_due = now;
      while (s->next_due <= now && sent < 2 && s->frame_bytes <= sizeof sil && s->state == S_OPEN) {
        unsigned char h[3];
        audio_silence_fill(sil, s->frame_bytes, s->fmt);
        as_header(h, s->fmt == AUDIO_SLIN16 ? AS_AUDIO_SLIN16 : AS_AUDIO, s->frame_bytes);
        if (tcp_send(s, h, 3, sil, s->frame_bytes) == 0) s->fill_out++;
        else s->dropped_out++;
        s->next_due += (uint64_t)s->frame_ms;
        sent++;
      }
    }
    return;
  }
  if (s->next_due + (uint64_t)s->frame_ms < now) {
    s->late_ticks++;
    if (s->next_due + 3 * (uint64_t)s->frame_ms < now) s->next_due = now; /* far behind: no burst */
  }
  while (s->next_due <= now && sent < 2 && s->state == S_OPEN) {
    size_t avail = s->out.len - s->out_off;
    if (avail == 0) break;
    if (avail >= s->frame_bytes) {
      send_frame(s, (unsigned char *)s->out.p + s->out_off, s->frame_bytes);
      s->out_off += s->frame_bytes;
    } else {
      unsigned char pad[8192];
      if (now < s->last_write + (uint64_t)s->frame_ms || s->frame_bytes > sizeof pad) break; /* more may come */
      memcpy(pad, s->out.p + s->out_off, avail);
      audio_silence_fill(pad + avail, s->frame_bytes - avail, s->fmt);
      send_frame(s, pad, s->frame_bytes);
      s->out_off += avail;
      s->underruns++;
    }
    s->next_due += (uint64_t)s->frame_ms;
    sent++;
  }
  if (s->out_off == s->out.len) {
    s->out_off = s->out.len = 0;
    if (s->want_drain && !from_write) { s->want_drain = 0; ms_event(s, "drained"); }
  } else if (s->out_off > 65536) {
    buf_consume(&s->out, s->out_off);
    s->out_off = 0;
  }
}

/* A TCP peer that has taken no output for stall_ms while some waits. */
static int ms_stalled(const mstream *s, uint64_t now) {
  return s->stall_ms > 0 && s->state == S_OPEN && s->tcp_up && s->tcp_open &&
         now - s->last_sent >= (uint64_t)s->stall_ms && uv_stream_get_write_queue_size((uv_stream_t *)s->tcp) > 0;
}

static void tick_cb(uv_timer_t *t) {
  media_mod *m = (media_mod *)t->data;
  uint64_t now = uv_now(&m->c->uv);
  mstream *s, **all;
  size_t n = 0, i;
  /* a snapshot: the Lua called from a stream's pacing ("drained") may close
   * any stream (kept between ticks: no allocation per tick) */
  for (s = m->streams; s != NULL; s = s->next) n++;
  if (n > m->snap_cap) {
    size_t cap = n < 64 ? 64 : n + n / 2;
    mstream **p = realloc(m->snap, cap * sizeof *p);
    if (p == NULL) return;
    m->snap = p;
    m->snap_cap = cap;
  }
  all = m->snap;
  n = 0;
  for (s = m->streams; s != NULL; s = s->next) { all[n++] = s; s->refs++; }
  for (i = 0; i < n; i++) {
    s = all[i];
    if (s->state == S_OPEN) ms_pace(s, now, 0);
    if (ms_stalled(s, now)) ms_close(s, "stalled", 1);
    ms_unref(s);
  }
}

static void tick_start(media_mod *m) {
  if (!m->tick_on && !m->closed) {
    m->tick_on = 1;
    uv_timer_start(&m->tick, tick_cb, MEDIA_TICK_MS, MEDIA_TICK_MS);
  }
}

/* ---------------------------------------------------------------- TCP */

typedef struct wreq { uv_write_t req; mstream *s; } wreq;

static void write_done(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  if (status == 0) w->s->last_sent = uv_now(&w->s->c->uv);
  ms_unref(w->s);
  free(w);
}

int tcp_send(mstream *s, const unsigned char *a, size_t an, const unsigned char *b, size_t bn) {
  wreq *w;
  uv_buf_t bufs[2];
  size_t pending;
  int r;
  if (!s->tcp_up) return -1;
  pending = uv_stream_get_write_queue_size((uv_stream_t *)s->tcp);
  if (pending > MEDIA_MAX_TCP_OUT) return -1; /* peer not reading */
  if (pending == 0) s->last_sent = uv_now(&s->c->uv); /* it took all there was */
  w = malloc(sizeof *w + an + bn);
  if (w == NULL) return -1;
  memcpy((unsigned char *)(w + 1), a, an);
  if (bn) memcpy((unsigned char *)(w + 1) + an, b, bn);
  bufs[0] = uv_buf_init((char *)(w + 1), (unsigned)(an + bn));
  w->s = s;
  s->refs++;
  r = uv_write(&w->req, (uv_stream_t *)s->tcp, bufs, 1, write_done);
  if (r != 0) { s->refs--; free(w); return -1; }
  (void)bufs[1];
  return 0;
}

/* A fixed send buffer: what a stalled peer leaves unsent stays bounded by
 * MEDIA_TCP_SNDBUF (kernel) + MEDIA_MAX_TCP_OUT (libuv's queue). */
void ms_tcp_sndbuf(uv_tcp_t *t) {
  int v = MEDIA_TCP_SNDBUF;
  (void)uv_send_buffer_size((uv_handle_t *)t, &v);
}

void alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *b) {
  static char slab[65536];
  (void)h; (void)size;
  *b = uv_buf_init(slab, sizeof slab);
}

/* One AudioSocket message. */
static void as_message(mstream *s, const as_msg *m) {
  if (!s->uuid_ok) {
    if (m->kind == AS_UUID && m->len == 16 && memcmp(m->payload, s->uuid, 16) == 0) {
      s->uuid_ok = 1;
      s->state = S_OPEN;
      s->next_due = uv_now(&s->c->uv);
      ms_event(s, "open");
    } else {
      s->dropped_foreign++;
      ms_close(s, "error: the AudioSocket connection did not identify as this stream", 1);
    }
    return;
  }
  if (m->kind >= AS_AUDIO && m->kind <= AS_AUDIO_LAST) {
    size_t n = m->len;
    if (audio_bps(s->fmt) == 2) n &= ~(size_t)1;
    in_push(s, m->payload, n);
  } else if (m->kind == AS_HANGUP) {
    ms_close(s, "peer", 1);
  } else if (m->kind == AS_ERROR) {
    ms_close(s, "error: AudioSocket error message", 1);
  } /* DTMF and others: not audio */
}

void tcp_input(mstream *s) {
  size_t off = 0;
  if (s->transport == T_WS && s->ws_hs) {
    int r = ws_handshake(s);
    if (r < 0) { ms_close(s, s->reason[0] ? s->reason : "error: websocket handshake", 1); return; }
    if (r == 0) return;
  }
  while (s->state != S_CLOSED && off < s->ibuf.len) {
    if (s->transport == T_AS) {
      as_msg m;
      long used = as_parse((unsigned char *)s->ibuf.p + off, s->ibuf.len - off, AS_MAX_PAYLOAD, &m);
      if (used == 0) break;
      if (used < 0) { ms_close(s, "error: AudioSocket message too large", 1); return; }
      off += (size_t)used;
      as_message(s, &m);
    } else {
      rfc6455_frame f;
      int r = rfc6455_parse(&s->wsp, (unsigned char *)s->ibuf.p + off, s->ibuf.len - off, &f);
      if (r == 0) break;
      if (r < 0) {
        char why[140];
        snprintf(why, sizeof why, "error: websocket: %s", s->wsp.reason ? s->wsp.reason : "protocol error");
        ms_close(s, why, 1);
        return;
      }
      off += f.size;
      if (f.op == RFC6455_CLOSE) { ms_close(s, "peer", 1); return; }
      if (f.op == RFC6455_PING) {
        buf pong = {0};
        unsigned char mask[4];
        uv_random(NULL, NULL, mask, 4, 0, NULL);
        if (rfc6455_frame_add(&pong, RFC6455_PONG, f.data, f.len, s->ws_server ? NULL : mask) == 0) tcp_send(s, (unsigned char *)pong.p, pong.len, NULL, 0);
        buf_free(&pong);
        continue;
      }
      if (f.op == RFC6455_PONG) continue;
      if (f.msg_op == RFC6455_BINARY) {
        size_t n = f.len;
        if (audio_bps(s->fmt) == 2) n &= ~(size_t)1;
        in_push(s, f.data, n);
      } else if (f.msg_op == RFC6455_TEXT && f.fin) {
        ws_text(s, f.data, f.len);
      }
    }
  }
  if (s->state == S_CLOSED) return;
  if (off > 0) buf_consume(&s->ibuf, off);
}

void tcp_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *b) {
  mstream *s = (mstream *)st->data;
  if (nread < 0) {
    ms_close(s, nread == UV_EOF ? "peer" : "error: connection lost", 1);
    return;
  }
  if (nread == 0) return;
  if (buf_add(&s->ibuf, b->base, (size_t)nread) != 0) { ms_close(s, "error: out of memory", 1); return; }
  s->refs++;
  tcp_input(s);
  ms_unref(s);
}

static void as_accept_cb(uv_stream_t *lis, int status) {
  mstream *s = (mstream *)lis->data;
  if (status < 0 || s->state == S_CLOSED) return;
  if (s->tcp_open) { /* one connection only: any other is refused */
    uv_tcp_t *t = malloc(sizeof *t);
    s->dropped_foreign++;
    if (t == NULL) return;
    uv_tcp_init(&s->c->uv, t);
    if (uv_accept(lis, (uv_stream_t *)t) == 0) {}
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
    return;
  }
  if ((s->tcp = malloc(sizeof *s->tcp)) == NULL) return;
  uv_tcp_init(&s->c->uv, s->tcp);
  uv_unref((uv_handle_t *)s->tcp);
  s->tcp->data = s;
  s->tcp_open = 1;
  s->refs++;
  if (uv_accept(lis, (uv_stream_t *)s->tcp) != 0) { ms_close(s, "error: accept failed", 1); return; }
  s->tcp_up = 1;
  uv_tcp_nodelay(s->tcp, 1);
  ms_tcp_sndbuf(s->tcp);
  uv_read_start((uv_stream_t *)s->tcp, alloc_cb, tcp_read_cb);
  /* one connection: the listening socket goes */
  s->lis_open = 0;
  uv_close((uv_handle_t *)&s->lis, ms_handle_closed);
}

/* ---------------------------------------------------------------- UDP */

static int same_addr(const struct sockaddr *a, const struct sockaddr_storage *b) {
  if (a->sa_family != b->ss_family) return 0;
  if (a->sa_family == AF_INET) {
    const struct sockaddr_in *x = (const struct sockaddr_in *)a, *y = (const struct sockaddr_in *)b;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->sa_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a, *y = (const struct sockaddr_in6 *)b;
    return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
  }
  return 0;
}

static int pt_fits(int fmt, int pt) {
  if (fmt == AUDIO_ULAW) return pt == 0;
  if (fmt == AUDIO_ALAW) return pt == 8;
  if (fmt == AUDIO_SLIN && (pt == 10 || pt == 11)) return 1;
  return pt >= 96 && pt <= 127;
}

static void udp_recv_cb(usock *u, const unsigned char *p, size_t n, const struct sockaddr *from, int truncated) {
  mstream *s = (mstream *)u->poll.data;
  rtp_packet pk;
  if (s->state == S_CLOSED) return;
  if (!s->have_peer || !same_addr(from, &s->peer) || truncated || n > RTP_MAX_PACKET ||
      rtp_parse(p, n, &pk) != 0) {
    s->dropped_foreign++;
    return;
  }
  if (pk.pt == 13) return; /* comfort noise */
  if (s->pt_in < 0) {
    if (!pt_fits(s->fmt, pk.pt)) { s->dropped_foreign++; return; }
    s->pt_in = pk.pt;
    s->pt_out = pk.pt;
  } else if (pk.pt != s->pt_in) {
    s->dropped_foreign++;
    return;
  }
  s->refs++;
  rtp_rx_push(&s->rx, pk.seq, pk.payload, pk.len, rtp_deliver, s);
  ms_unref(s);
}

mstream *check_ms(lua_State *L) {
  mstream **p = (mstream **)luaL_checkudata(L, 1, MEDIA_MT);
  if (*p == NULL) luaL_error(L, "media stream already freed");
  return *p;
}

/* [perf] check_ms for the methods called per frame (read, write, want,
 * want_drain): they are registered with the metatable as upvalue 1, so the
 * check is a pointer compare rather than luaL_checkudata's registry lookup
 * by name.  Anything else (no upvalue, another type) takes check_ms, which
 * raises the usual error. */
static mstream *check_ms_hot(lua_State *L) {
  mstream **p = (mstream **)lua_touserdata(L, 1);
  if (p != NULL && lua_getmetatable(L, 1)) {
    int same = lua_rawequal(L, -1, lua_upvalueindex(1));
    lua_pop(L, 1);
    if (same) {
      if (*p == NULL) luaL_error(L, "media stream already freed");
      return *p;
    }
  }
  return check_ms(L);
}

static media_mod *get_mod(lua_State *L);

static int opt_int(lua_State *L, int t, const char *k, int def, int lo, int hi) {
  int v;
  lua_getfield(L, t, k);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return def; }
  if (!lua_isinteger(L, -1)) luaL_error(L, "media: %s must be an integer", k);
  v = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (v < lo || v > hi) luaL_error(L, "media: %s must be between %d and %d", k, lo, hi);
  return v;
}

int parse_addr(const char *ip, int port, struct sockaddr_storage *out) {
  memset(out, 0, sizeof *out);
  if (uv_ip4_addr(ip, port, (struct sockaddr_in *)out) == 0) return 0;
  if (uv_ip6_addr(ip, port, (struct sockaddr_in6 *)out) == 0) return 0;
  return -1;
}

static int l_new(lua_State *L) {
  core_loop *c = core_get(L);
  media_mod *m = get_mod(L);
  const char *tr, *fname, *bind;
  int transport, fmt, queue_ms, in_ms, stall_ms, r;
  struct sockaddr_storage addr;
  mstream *s, **ud;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_getfield(L, 1, "transport");
  tr = luaL_optstring(L, -1, "rtp");
  transport = strcmp(tr, "rtp") == 0 ? T_RTP : strcmp(tr, "audiosocket") == 0 ? T_AS
            : strcmp(tr, "websocket") == 0 ? T_WS : -1;
  lua_pop(L, 1);
  if (transport < 0) return luaL_error(L, "media: unknown transport '%s'", tr);
  lua_getfield(L, 1, "format");
  fname = luaL_optstring(L, -1, "slin16");
  fmt = audio_format(fname);
  lua_pop(L, 1);
  if (fmt < 0) return luaL_error(L, "media: unknown format '%s'", fname);
  queue_ms = opt_int(L, 1, "queue_ms", 2000, 20, 600000);
  in_ms = opt_int(L, 1, "in_queue_ms", 1000, 20, 600000);
  stall_ms = opt_int(L, 1, "stall_ms", 10000, 0, 86400000);
  lua_getfield(L, 1, "bind");
  bind = luaL_optstring(L, -1, "127.0.0.1");
  if (m->closed) return luaL_error(L, "media: shutting down");
  if (transport != T_WS && parse_addr(bind, 0, &addr) != 0) return luaL_error(L, "media: bad bind address '%s'", bind);

  s = calloc(1, sizeof *s);
  if (s == NULL) return luaL_error(L, "out of memory");
  ud = (mstream **)lua_newuserdatauv(L, sizeof *ud, 0);
  *ud = s;
  luaL_setmetatable(L, MEDIA_MT);
  s->refs = 1;
  s->c = c;
  s->transport = transport;
  s->fmt = fmt;
  s->frame_ms = 20;
  s->frame_bytes = audio_frame_bytes(fmt, 20);
  s->out_max = audio_frame_bytes(fmt, queue_ms);
  s->in_max = audio_frame_bytes(fmt, in_ms);
  s->stall_ms = stall_ms;
  s->pt_in = -1;
  s->pt_out = default_pt(fmt);
  s->cb_ref = LUA_NOREF;
  uv_random(NULL, NULL, &s->ssrc, sizeof s->ssrc, 0, NULL);
  uv_random(NULL, NULL, &s->tx_seq, sizeof s->tx_seq, 0, NULL);
  uv_random(NULL, NULL, &s->tx_ts, sizeof s->tx_ts, 0, NULL);
  s->mod = m;
  s->next = m->streams;
  if (m->streams) m->streams->prev = s;
  m->streams = s;
  tick_start(m);

  if (transport == T_RTP) {
    r = usock_open(&s->udp, &c->uv, (const struct sockaddr *)&addr, udp_recv_cb);
    if (s->udp.inited) {
      uv_unref((uv_handle_t *)&s->udp.poll);
      s->udp.poll.data = s;
      s->udp_open = 1;
      s->refs++;
    }
    if (r != 0) goto fail;
    s->state = S_OPEN;
  } else if (transport == T_AS) {
    const char *u;
    lua_getfield(L, 1, "uuid");
    u = lua_tostring(L, -1);
    if (u == NULL || as_uuid_bytes(u, s->uuid) != 0) { ms_close(s, "error", 0); return luaL_error(L, "media: audiosocket needs a uuid"); }
    lua_pop(L, 1);
    uv_tcp_init(&c->uv, &s->lis);
    uv_unref((uv_handle_t *)&s->lis);
    s->lis.data = s;
    s->lis_open = 1;
    s->refs++;
    r = uv_tcp_bind(&s->lis, (const struct sockaddr *)&addr, 0);
    if (r == 0) r = uv_listen((uv_stream_t *)&s->lis, 4, as_accept_cb);
    if (r != 0) goto fail;
  } else {
    rfc6455_init(&s->wsp, RFC6455_CLIENT, MEDIA_MAX_WS_MESSAGE);
  }
  s->cb_ref = core_ref(L, 2);
  return 1;
fail:
  ms_close(s, "error: bind", 0);
  lua_pushnil(L);
  lua_pushfstring(L, "cannot open a socket on %s: %s", bind, uv_strerror(r));
  return 2;
}

static int l_port(lua_State *L) {
  mstream *s = check_ms(L);
  struct sockaddr_storage a;
  int len = sizeof a, r = -1;
  if (s->udp_open) r = usock_getsockname(&s->udp, &a);
  else if (s->lis_open) r = uv_tcp_getsockname(&s->lis, (struct sockaddr *)&a, &len);
  if (r != 0) return 0;
  lua_pushinteger(L, a.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&a)->sin6_port)
                                             : ntohs(((struct sockaddr_in *)&a)->sin_port));
  return 1;
}

static int l_set_peer(lua_State *L) {
  mstream *s = check_ms(L);
  const char *ip = luaL_checkstring(L, 2);
  int port = (int)luaL_checkinteger(L, 3);
  if (port <= 0 || port > 65535 || parse_addr(ip, port, &s->peer) != 0)
    return luaL_error(L, "media: bad peer address %s:%d", ip, port);
  s->have_peer = 1;
  return 0;
}

static int l_read(lua_State *L) {
  mstream *s = check_ms_hot(L);
  uint32_t len;
  if (s->in_bytes == 0) return 0;
  memcpy(&len, s->in.p + s->in_off, 4);
  lua_pushlstring(L, (const char *)s->in.p + s->in_off + 4, len);
  s->in_off += 4 + len;
  s->in_bytes -= len;
  if (s->in_bytes == 0) { s->in.len = 0; s->in_off = 0; }
  lua_pushnumber(L, (lua_Number)len * 1000.0 / (audio_rate(s->fmt) * audio_bps(s->fmt)));
  return 2;
}

static void rtimer_cb(uv_timer_t *t) {
  mstream *s = (mstream *)t->data;
  uint64_t now;
  if (!s->want || s->rdeadline == 0 || s->state == S_CLOSED) return;
  now = uv_now(&s->c->uv);
  if (now < s->rdeadline) { /* the deadline moved on since the timer was armed */
    uv_timer_start(&s->rtimer, rtimer_cb, s->rdeadline - now, 0);
    return;
  }
  s->want = 0;
  s->rdeadline = 0;
  s->refs++;
  ms_event(s, "timeout");
  ms_unref(s);
}

/* want(on [, timeout_ms]).  [perf] Called once per frame by the lean read:
 * the timer is re-armed only when the new deadline is earlier than the one
 * it is armed for; otherwise rdeadline moves and rtimer_cb re-arms for the
 * rest when it fires early (a 2 s read timeout then costs one timer start
 * per 2 s, not a heap removal and insertion per frame). */
static int l_want(lua_State *L) {
  mstream *s = check_ms_hot(L);
  lua_Integer ms = -1;
  s->want = lua_toboolean(L, 2);
  if (s->want && !lua_isnoneornil(L, 3)) {
    lua_Number n = luaL_checknumber(L, 3);
    ms = n < 0 ? -1 : n > 86400000.0 ? 86400000 : (lua_Integer)n;
  }
  if (ms >= 0 && s->state != S_CLOSED) {
    if (!s->rtimer_open) {
      uv_timer_init(&s->c->uv, &s->rtimer);
      s->rtimer.data = s;
      s->rtimer_open = 1;
      s->refs++;
    }
    s->rdeadline = uv_now(&s->c->uv) + (uint64_t)ms;
    if (s->rdeadline == 0) s->rdeadline = 1;
    if (!uv_is_active((uv_handle_t *)&s->rtimer) || uv_timer_get_due_in(&s->rtimer) > (uint64_t)ms)
      uv_timer_start(&s->rtimer, rtimer_cb, (uint64_t)ms, 0);
  } else {
    s->rdeadline = 0;
    if (s->rtimer_open) uv_timer_stop(&s->rtimer);
  }
  return 0;
}
static int l_want_drain(lua_State *L) { check_ms_hot(L)->want_drain = lua_toboolean(L, 2); return 0; }

static int l_write(lua_State *L) {
  mstream *s = check_ms_hot(L);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  if (s->state == S_CLOSED) { lua_pushboolean(L, 0); lua_pushliteral(L, "closed"); return 2; }
  if (audio_bps(s->fmt) == 2 && (n & 1)) return luaL_error(L, "media: odd-length %s data (%d bytes)", audio_format_name(s->fmt), (int)n);
  if (s->out.len - s->out_off + n > s->out_max) { lua_pushboolean(L, 0); lua_pushliteral(L, "overflow"); return 2; }
  if (s->out.len == s->out_off) {
    uint64_t now = uv_now(&s->c->uv);
    if (s->next_due < now) s->next_due = now;
  }
  if (buf_add(&s->out, p, n) != 0) return luaL_error(L, "out of memory");
  s->last_write = uv_now(&s->c->uv);
  if (s->next_due <= s->last_write && s->out.len - s->out_off >= s->frame_bytes) ms_pace(s, s->last_write, 1);
  lua_pushboolean(L, 1);
  return 1;
}

static lua_Number out_ms(mstream *s) {
  return (lua_Number)(s->out.len - s->out_off) * 1000.0 / (audio_rate(s->fmt) * audio_bps(s->fmt));
}

static int l_flush(lua_State *L) {
  mstream *s = check_ms(L);
  lua_pushnumber(L, out_ms(s));
  s->out.len = s->out_off = 0;
  if (s->want_drain) { s->want_drain = 0; ms_event(s, "drained"); }
  return 1;
}

static int l_queued(lua_State *L) { lua_pushnumber(L, out_ms(check_ms(L))); return 1; }

static int l_state(lua_State *L) {
  mstream *s = check_ms(L);
  static const char *names[] = {"opening", "open", "closed"};
  lua_pushstring(L, names[s->state]);
  if (s->state == S_CLOSED) { lua_pushstring(L, s->reason); return 2; }
  return 1;
}

static int l_close(lua_State *L) {
  mstream *s = check_ms(L);
  ms_close(s, luaL_optstring(L, 2, "closed"), 0);
  return 0;
}

static void setint(lua_State *L, const char *k, lua_Integer v) { lua_pushinteger(L, v); lua_setfield(L, -2, k); }

static int l_stats(lua_State *L) {
  mstream *s = check_ms(L);
  lua_createtable(L, 0, 20);
  setint(L, "frames_in", s->frames_in); setint(L, "bytes_in", s->bytes_in);
  setint(L, "frames_out", s->frames_out); setint(L, "bytes_out", s->bytes_out);
  setint(L, "lost", (lua_Integer)s->rx.lost); setint(L, "reordered", (lua_Integer)s->rx.reordered);
  setint(L, "late", (lua_Integer)s->rx.late); setint(L, "duplicates", (lua_Integer)s->rx.duplicates);
  setint(L, "dropped_foreign", s->dropped_foreign); setint(L, "dropped_in", s->dropped_in);
  setint(L, "dropped_out", s->dropped_out);
  setint(L, "late_ticks", s->late_ticks); setint(L, "underruns", s->underruns);
  setint(L, "fill_out", s->fill_out);
  lua_pushnumber(L, out_ms(s)); lua_setfield(L, -2, "queue_ms");
  lua_pushnumber(L, (lua_Number)s->in_bytes * 1000.0 / (audio_rate(s->fmt) * audio_bps(s->fmt)));
  lua_setfield(L, -2, "in_queue_ms");
  lua_pushboolean(L, s->xoff); lua_setfield(L, -2, "peer_queue_full");
  /* TCP: bytes handed to the socket that the kernel has not taken yet */
  setint(L, "unsent_out", s->tcp_up && s->tcp_open ? (lua_Integer)uv_stream_get_write_queue_size((uv_stream_t *)s->tcp) : 0);
  return 1;
}

static int l_gc(lua_State *L) {
  mstream **p = (mstream **)luaL_checkudata(L, 1, MEDIA_MT);
  mstream *s = *p;
  if (s == NULL) return 0;
  *p = NULL;
  if (s->c->closing) s->cb_ref = LUA_NOREF;
  else { core_unref(s->c, s->cb_ref); s->cb_ref = LUA_NOREF; }
  ms_close(s, "closed", 0);
  ms_unref(s);
  return 0;
}

/* ---------------------------------------------------------------- module */

static void mod_free(uv_handle_t *h) {
  media_mod *m = (media_mod *)h->data;
  free(m->snap);
  free(m);
}

static void mod_shutdown(core_loop *c, void *ud) {
  media_mod *m = (media_mod *)ud;
  (void)c;
  while (m->streams) {
    mstream *s = m->streams;
    s->cb_ref = LUA_NOREF;
    ms_close(s, "closed", 0);
  }
  if (!m->closed) {
    m->closed = 1;
    uv_close((uv_handle_t *)&m->tick, mod_free);
  }
}

static media_mod *get_mod(lua_State *L) {
  media_mod *m;
  lua_getfield(L, LUA_REGISTRYINDEX, MEDIA_MOD_KEY);
  m = (media_mod *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (m == NULL) {
    core_loop *c = core_get(L);
    m = calloc(1, sizeof *m);
    if (m == NULL) luaL_error(L, "out of memory");
    m->c = c;
    uv_timer_init(&c->uv, &m->tick);
    uv_unref((uv_handle_t *)&m->tick); /* media never keeps the loop alive by itself: */
    m->tick.data = m;                    /* its call (the ARI connection) does */
    lua_pushlightuserdata(L, m);
    lua_setfield(L, LUA_REGISTRYINDEX, MEDIA_MOD_KEY);
    core_on_shutdown(c, mod_shutdown, m);
  }
  return m;
}

void media_check_open(lua_State *L); /* media_check.c */
void media_listen_open(lua_State *L); /* media_listen.c */

void media_open(lua_State *L) {
  static const luaL_Reg meth[] = {
    {"port", l_port}, {"set_peer", l_set_peer}, {"ws_connect", l_ws_connect}, {"read", l_read},
    {"want", l_want}, {"want_drain", l_want_drain}, {"write", l_write}, {"flush", l_flush},
    {"queued", l_queued}, {"send_text", l_send_text}, {"text", l_text}, {"state", l_state},
    {"close", l_close}, {"stats", l_stats}, {"__gc", l_gc}, {NULL, NULL}};
  static const luaL_Reg hot[] = {
    {"read", l_read}, {"want", l_want}, {"want_drain", l_want_drain}, {"write", l_write}, {NULL, NULL}};
  core_newmeta(L, MEDIA_MT, meth);
  luaL_getmetatable(L, MEDIA_MT);
  lua_pushvalue(L, -1);
  luaL_setfuncs(L, hot, 1); /* the per-frame methods again, the metatable as upvalue (check_ms_hot) */
  lua_pop(L, 1);
  lua_pushcfunction(L, l_new);
  lua_setfield(L, -2, "media_new");
  media_check_open(L);
  media_listen_open(L);
}
