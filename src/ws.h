/* ws.h - what ws.c (the Lua face: core.ws_connect's options, the conn
 * class, the handler calls) and ws_uv.c (the connection on the libuv
 * loop: DNS, connecting, TLS through tls.c, the opening handshake, frames
 * in and out through rfc6455.c, pings, reconnects, teardown) share.
 * Internal to those two files.
 */
#ifndef ARI_WS_H
#define ARI_WS_H

#include "core.h"
#include "buf.h"

#include "rfc6455.h"
#include "tls.h"

enum ws_state { WS_CONNECTING, WS_OPEN, WS_WAITING, WS_CLOSED };

typedef struct ws_ctx ws_ctx;
typedef struct ws_conn ws_conn;
typedef struct ws_sock ws_sock;

struct ws_ctx {
  core_loop *c;
  ws_conn *conns;
  ws_sock *dirty;       /* sockets with bytes to write this loop turn */
  uv_prepare_t flush;   /* writes them, once per loop turn */
  int flush_open;       /* the prepare handle is not closed yet */
  int nsocks;           /* sockets not closed yet */
  tls_cache *tls;       /* one OpenSSL context per (cainfo, insecure) */
  char *rbuf;           /* read buffer of TLS sockets (ciphertext) */
  int shutting_down;
};

/* One connection from core.ws_connect: its settings, its Lua handlers,
 * its socket and timers.  Made by ws.c, freed by ws_uv.c (ws_maybe_free)
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
  ws_sock *sock;   /* the current attempt's socket (ws_uv.c) */
  struct ws_gai *gai; /* the DNS lookup in progress */
  struct sockaddr_storage addrs[4]; /* what it gave, tried in order */
  int naddrs, addr_i;
  int upgraded;    /* the handshake answer was accepted */
  int close_code;
  char close_reason[128];
  char accept[RFC6455_ACCEPT_LEN + 1]; /* Sec-WebSocket-Accept expected */
  int attempt; /* consecutive failed attempts, for the backoff */
  uv_timer_t t_main, t_ping;
  int timers_open; /* uv handles not yet closed */
  int main_mode;   /* what t_main is doing (ws_uv.c) */
  int ping_phase;  /* 0: waiting to ping, 1: waiting for the pong */
  int close_sent;
  uint64_t ping_sent_at, last_rx_at;

  /* rx */
  buf in;              /* bytes read, not parsed yet */
  rfc6455_parser ps;
  buf rx;              /* the fragments of the message being received */
  const char *msg;     /* the message ws_emit_message delivers */
  size_t msg_len;
  int rx_binary;
  int rx_dropping;     /* the rest of an oversize message is skipped */
  uint64_t skip;       /* payload bytes of an oversize frame still to skip */

  /* stats */
  lua_Integer reconnects, messages, dropped;
  size_t tx_bytes; /* queued, not yet handed to the kernel */
};

/* ---------------------------------------------------------------- ws_uv.c */

/* Set up a new ws_ctx (ws.c made it, zeroed, with c set): 0 or -1. */
int ws_ctx_init(ws_ctx *w);
/* The shutdown hook of a ws_ctx (registered by ws.c when it makes one):
 * closes every connection, frees what it can. */
void ws_shutdown(core_loop *c, void *ud);
/* Start connecting (DNS first): the conn is WS_CONNECTING. */
void ws_start_attempt(ws_conn *k);
/* Free a conn that never started (unlinks it from its ctx). */
void ws_conn_free(ws_conn *k);
/* conn:close(): stop for good (gracefully when open), no reconnects. */
void ws_close_conn(ws_conn *k);
/* conn:send(): queue a text (binary: a binary) frame; NULL or why not. */
const char *ws_enqueue(ws_conn *k, const char *s, size_t n, int binary);
/* The Lua value is gone (k->dead set, refs released): stop everything;
 * the conn frees itself once its timers have closed. */
void ws_abandon(ws_conn *k);

/* ---------------------------------------------------------------- ws.c */

/* The handlers, each called through core_call (nothing when the conn is
 * dead or the state closing; an error becomes a report, never an unwind):
 * on_open(), on_message(...) with the message in k->msg, k->msg_len,
 * on_close(code, reason, again), on_error(msg) (logged when absent). */
void ws_emit_open(ws_conn *k);
void ws_emit_message(ws_conn *k);
void ws_emit_close(ws_conn *k, int code, const char *reason, int again);
void ws_emit_error(ws_conn *k, const char *msg);
/* Drop the registry anchor of a conn that is closed for good. */
void ws_unanchor(ws_conn *k);

#endif
