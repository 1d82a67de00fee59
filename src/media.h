/* media.h - the media stream shared by media.c (sockets, queues, pacing),
 * media_ws.c (the WebSocket parts: handshake, control messages, the
 * connection a listener hands over) and media_listen.c.  Internal to the
 * core; docs/media.md is the contract.
 */
#ifndef ARI_MEDIA_H
#define ARI_MEDIA_H

#include "audio.h"
#include "buf.h"
#include "core.h"
#include "rfc6455.h"
#include "usock.h"

#define MEDIA_MT "ari.core.media"
#define MEDIA_MOD_KEY "ari.core.media.mod"
#define MEDIA_TICK_MS 10
#define MEDIA_MAX_TCP_OUT (64 * 1024)   /* unsent bytes before frames are dropped */
#define MEDIA_TCP_SNDBUF (32 * 1024)    /* SO_SNDBUF of a media connection (Linux doubles it): without it
                                         * the kernel grows the buffer to tcp_wmem's max (4 MiB, minutes
                                         * of audio) for a peer that stopped reading */
#define MEDIA_MAX_WS_MESSAGE (64 * 1024)
#define MEDIA_MAX_TEXT 8

enum { T_RTP = 0, T_AS, T_WS };
enum { S_OPENING = 0, S_OPEN, S_CLOSED };

typedef struct mstream mstream;

typedef struct media_mod {
  core_loop *c;
  uv_timer_t tick;
  int tick_on, closed;
  mstream *streams;
  mstream **snap;         /* the tick's snapshot of the streams, kept between ticks */
  size_t snap_cap;
} media_mod;

struct mstream {
  core_loop *c;
  media_mod *mod;
  mstream *prev, *next;
  int refs;               /* the userdata + each open uv handle */
  int transport, fmt, frame_ms, state;
  size_t frame_bytes;
  char reason[160];
  int cb_ref;
  int want, want_drain, in_cb;
  /* sockets */
  usock udp;              /* rtp; udp.poll.data is the stream */
  uv_tcp_t lis;
  uv_tcp_t *tcp;          /* malloc'd: a listener may hand its connection over */
  int udp_open, lis_open, tcp_open, tcp_up;
  uv_timer_t rtimer;      /* want(true, timeout): the wait's timeout */
  int rtimer_open;
  uint64_t rdeadline;     /* when that wait times out (loop time); 0: no timeout */
  struct sockaddr_storage peer;
  int have_peer;
  uv_connect_t creq;
  buf ibuf;               /* TCP bytes received, not parsed yet */
  /* rtp */
  rtp_rx rx;
  int pt_in, pt_out;
  uint16_t tx_seq;
  uint32_t tx_ts, ssrc;
  /* audiosocket */
  unsigned char uuid[16];
  int uuid_ok;
  /* websocket */
  rfc6455_parser wsp;
  int ws_hs;              /* 1 while the handshake answer is awaited */
  int ws_server;          /* Asterisk connected to us (connection_type client): frames unmasked */
  char ws_accept[RFC6455_ACCEPT_LEN + 1];
  buf text[MEDIA_MAX_TEXT];
  int ntext;
  int xoff;
  /* queues */
  buf in;                 /* records: 4-byte length, data */
  size_t in_off, in_bytes, in_max;
  buf out;
  size_t out_off, out_max;
  uint64_t last_write, next_due;
  uint64_t last_sent;     /* TCP: when the peer last took output (a write done, or nothing pending) */
  int stall_ms;           /* TCP: close with "stalled" after this long with output pending and none taken; 0 never */
  /* stats */
  lua_Integer frames_in, bytes_in, frames_out, bytes_out, dropped_foreign, dropped_in, dropped_out;
  lua_Integer late_ticks, underruns, fill_out;
};

/* media.c */
void ms_unref(mstream *s);
void ms_event(mstream *s, const char *kind);
void ms_close(mstream *s, const char *reason, int notify);
void in_push(mstream *s, const unsigned char *p, size_t n);
int tcp_send(mstream *s, const unsigned char *a, size_t an, const unsigned char *b, size_t bn);
void alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *b);
void tcp_input(mstream *s);
void tcp_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *b);
void ms_tcp_sndbuf(uv_tcp_t *t);
mstream *check_ms(lua_State *L);
int parse_addr(const char *ip, int port, struct sockaddr_storage *out);

/* media_ws.c */
void ws_text(mstream *s, const unsigned char *p, size_t n);
int ws_handshake(mstream *s);
int l_ws_connect(lua_State *L);
int l_send_text(lua_State *L);
int l_text(lua_State *L);

/* for media_listen.c */
void media_ref(mstream *s);
void media_unref(mstream *s);
int media_adopt(mstream *s, uv_tcp_t *tcp, const unsigned char *start, size_t start_len,
                const unsigned char *rest, size_t n);
mstream *media_check_stream(lua_State *L, int idx);

#endif
