/* ws.h - what ws.c (the Lua face: core.ws_connect's options, the conn
 * class, the handler calls) and ws_lws.c (the connection over
 * libwebsockets on the libuv loop: DNS, connecting, frames in and out,
 * pings, reconnects, teardown) share.  Internal to those two files.
 */
#ifndef ARI_WS_H
#define ARI_WS_H

#include "core.h"
#include "buf.h"

#include <libwebsockets.h>

enum ws_state { WS_CONNECTING, WS_OPEN, WS_WAITING, WS_CLOSED };

typedef struct ws_ctx ws_ctx;
typedef struct ws_conn ws_conn;

struct ws_ctx {
  core_loop *c;
  struct lws_context *ctx; /* set to NULL by lws when fully destroyed */
  struct ws_vhost *vhosts; /* one extra vhost per distinct cainfo */
  ws_conn *conns;
  int shutting_down;
};

/* One connection from core.ws_connect: its settings, its Lua handlers,
 * its lws and uv state.  Made by ws.c, freed by ws_lws.c (ws_maybe_free)
 * once nothing refers to it. */
struct ws_conn {
  core_loop *c;
  ws_ctx *w;
  ws_conn *next, *prev;

  /* configuration */
  char *host;     /* for DNS and the Host header (no brackets) */
  char *hosthdr;  /* Host header value, with :port when not default */
  char *path;     /* path?query */
  char *protocol; /* subprotocol or NULL */
  char *cainfo;
  char **hdr_names; /* "Name:" */
  char **hdr_values;
  int nhdrs;
  int port, tls, insecure, json, reconnect;
  size_t max_message;
  uint64_t ping_interval, pong_timeout, backoff_min, backoff_max, connect_timeout;

  /* Lua side */
  int on_open, on_message, on_close, on_error;
  int self_ref; /* anchors the userdata while not closed */
  ws_conn **box; /* the userdata's pointer, cleared at __gc */

  /* state */
  int state;
  int user_closed; /* conn:close() called: no more reconnects */
  int dead;        /* the Lua value is gone: no Lua calls, free when idle */
  struct lws *wsi;
  int nwsi;     /* wsis whose user data is this conn (until WSI_DESTROY) */
  int destroys; /* WSI_DESTROY callbacks seen */
  struct ws_gai *gai; /* the DNS lookup in progress */
  int wsi_opened;       /* the current wsi reached ESTABLISHED */
  int kill_reason_set;  /* we killed the wsi: use close_code/close_reason */
  int close_code;
  char close_reason[128];
  int attempt; /* consecutive failed attempts, for the backoff */
  uv_timer_t t_main, t_ping;
  int timers_open; /* uv handles not yet closed */
  int main_mode;   /* what t_main is doing (ws_lws.c) */
  int ping_phase;  /* 0: waiting to ping, 1: waiting for the pong */
  int ping_pending, close_pending, close_sent;
  uint64_t ping_sent_at, last_rx_at;

  /* rx */
  buf rx;
  int rx_binary, rx_dropping, rx_in_message;

  /* tx */
  struct ws_msg *txq, *txq_tail;
  size_t tx_bytes;

  /* stats */
  lua_Integer reconnects, messages, dropped;
};

/* ---------------------------------------------------------------- ws_lws.c */

/* The shutdown hook of a ws_ctx (registered by ws.c when it makes one):
 * closes every connection and the lws context, frees what it can. */
void ws_shutdown(core_loop *c, void *ud);
/* Start connecting (DNS first): the conn is WS_CONNECTING. */
void ws_start_attempt(ws_conn *k);
/* Free a conn that never started (unlinks it from its ctx). */
void ws_conn_free(ws_conn *k);
/* conn:close(): stop for good (gracefully when open), no reconnects. */
void ws_close_conn(ws_conn *k);
/* conn:send(): queue a text frame; NULL or why not. */
const char *ws_enqueue(ws_conn *k, const char *s, size_t n);
/* The Lua value is gone (k->dead set, refs released): stop everything;
 * the conn frees itself once lws and its timers let go of it. */
void ws_abandon(ws_conn *k);

/* ---------------------------------------------------------------- ws.c */

/* The handlers, each called through core_call (nothing when the conn is
 * dead or the state closing; an error becomes a report, never an unwind):
 * on_open(), on_message(...) with the reassembled message in k->rx,
 * on_close(code, reason, again), on_error(msg) (logged when absent). */
void ws_emit_open(ws_conn *k);
void ws_emit_message(ws_conn *k);
void ws_emit_close(ws_conn *k, int code, const char *reason, int again);
void ws_emit_error(ws_conn *k, const char *msg);
/* Drop the registry anchor of a conn that is closed for good. */
void ws_unanchor(ws_conn *k);

#endif
