/* ws.c - WebSocket client: libwebsockets on the shared libuv loop.
 *
 * One lws_context per core_loop, created at the first connect with the
 * core's uv loop as a foreign loop (LWS_SERVER_OPTION_LIBUV), destroyed in
 * a core_on_shutdown hook.  Each connection (ws_conn) owns:
 *   - at most one lws wsi at a time (wsi user data = the conn),
 *   - two uv timers: t_main (connect timeout / reconnect backoff / deferred
 *     close notification) and t_ping (keep-alive pings + pong deadline),
 *   - a receive buffer (fragments reassembled) and a send queue.
 * Host names are resolved with uv_getaddrinfo (lws's own resolver blocks),
 * and lws connects to the numeric address with the original Host header.
 *
 * Lifetime: a conn that is not closed is anchored in the registry (its
 * callbacks keep running even if Lua drops the value).  Its memory is freed
 * once the Lua value is gone (or the state closes), no wsi refers to it and
 * its timers have closed.
 */
#include "core.h"
#include "buf.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__has_include)
#if __has_include("json.h")
#include "json.h"
#define WS_HAVE_JSON 1
#endif
#endif

#define WS_CONN_MT "ari.core.ws"
#define WS_CTX_KEY "ari.core.ws.ctx"

#define WS_DEFAULT_MAX_MESSAGE (16u * 1024u * 1024u)
#define WS_MAX_QUEUED (64u * 1024u * 1024u)
/* lws's private opcode for a close frame (LWS_WRITE_CLOSE, not exported by
 * the 4.1 headers; the value is part of its ABI). */
#define WS_WRITE_CLOSE ((enum lws_write_protocol)4)

enum ws_state { WS_CONNECTING, WS_OPEN, WS_WAITING, WS_CLOSED };
static const char *const ws_state_names[] = {"connecting", "open", "waiting", "closed"};

typedef struct ws_ctx ws_ctx;
typedef struct ws_conn ws_conn;

struct ws_ctx {
  core_loop *c;
  struct lws_context *ctx; /* set to NULL by lws when fully destroyed */
  struct ws_vhost *vhosts; /* one extra vhost per distinct cainfo */
  ws_conn *conns;
  int shutting_down;
};

struct ws_vhost {
  char *cainfo;
  struct lws_vhost *vh;
  struct ws_vhost *next;
};

typedef struct ws_msg {
  struct ws_msg *next;
  size_t len;
  unsigned char data[]; /* LWS_PRE bytes of headroom, then the payload */
} ws_msg;

typedef struct ws_gai {
  uv_getaddrinfo_t req;
  ws_conn *conn; /* NULL once the conn gave up on this lookup */
} ws_gai;

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
  ws_gai *gai;
  int wsi_opened;       /* the current wsi reached ESTABLISHED */
  int kill_reason_set;  /* we killed the wsi: use close_code/close_reason */
  int close_code;
  char close_reason[128];
  int attempt; /* consecutive failed attempts, for the backoff */
  uv_timer_t t_main, t_ping;
  int timers_open; /* uv handles not yet closed */
  int main_mode;   /* what t_main is doing, enum below */
  int ping_phase;  /* 0: waiting to ping, 1: waiting for the pong */
  int ping_pending, close_pending, close_sent;
  uint64_t ping_sent_at, last_rx_at;

  /* rx */
  buf rx;
  int rx_binary, rx_dropping, rx_in_message;

  /* tx */
  ws_msg *txq, *txq_tail;
  size_t tx_bytes;

  /* stats */
  lua_Integer reconnects, messages, dropped;
};

enum { WS_MAIN_IDLE, WS_MAIN_CONNECT_TIMEOUT, WS_MAIN_BACKOFF, WS_MAIN_NOTIFY_CLOSED };

static void ws_start_attempt(ws_conn *k);
static void ws_lost(ws_conn *k, int code, const char *reason);

/* ---------------------------------------------------------------- helpers */

static char *ws_strdup(const char *s) {
  size_t n;
  char *d;
  if (s == NULL) return NULL;
  n = strlen(s);
  d = malloc(n + 1);
  if (d != NULL) memcpy(d, s, n + 1);
  return d;
}

static char *ws_strndup(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d != NULL) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

static int ws_can_call(ws_conn *k) { return !k->dead && !k->c->closing; }

/* Call handler ref with the values already pushed after it. */
static void ws_call(ws_conn *k, int ref, int nargs) {
  if (!ws_can_call(k) || ref == LUA_NOREF) {
    lua_pop(k->c->L, nargs);
    return;
  }
  core_push_ref(k->c, ref);
  lua_insert(k->c->L, -1 - nargs);
  core_call(k->c, nargs, 0);
}

static void ws_emit_error(ws_conn *k, const char *msg) {
  if (!ws_can_call(k) || k->on_error == LUA_NOREF) {
    core_log(k->c, CORE_LOG_WARN, "ws %s: %s", k->host ? k->host : "?", msg);
    return;
  }
  lua_pushstring(k->c->L, msg);
  ws_call(k, k->on_error, 1);
}

static void ws_txq_clear(ws_conn *k) {
  ws_msg *m;
  while ((m = k->txq) != NULL) {
    k->txq = m->next;
    free(m);
  }
  k->txq_tail = NULL;
  k->tx_bytes = 0;
}

static void ws_rx_reset(ws_conn *k) {
  k->rx.len = 0;
  k->rx_dropping = 0;
  k->rx_in_message = 0;
  buf_shrink(&k->rx, 1024 * 1024);
}

static void ws_unanchor(ws_conn *k) {
  if (k->self_ref != LUA_NOREF) {
    if (!k->c->closing) core_unref(k->c, k->self_ref);
    k->self_ref = LUA_NOREF;
  }
}

static void ws_release_refs(ws_conn *k) {
  if (!k->c->closing) {
    core_unref(k->c, k->on_open);
    core_unref(k->c, k->on_message);
    core_unref(k->c, k->on_close);
    core_unref(k->c, k->on_error);
  }
  k->on_open = k->on_message = k->on_close = k->on_error = LUA_NOREF;
}

static void ws_conn_free(ws_conn *k) {
  int i;
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
  buf_free(&k->rx);
  ws_txq_clear(k);
  free(k);
}

/* Free the conn if nothing refers to it any more. */
static void ws_maybe_free(ws_conn *k) {
  if (k->dead && k->nwsi == 0 && k->timers_open == 0) ws_conn_free(k);
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

/* Kill the current wsi from outside an lws callback.  sync: close it now
 * (its close callbacks run inside this call: only from our own uv
 * callbacks, never from a Lua API call); else lws closes it on its next
 * service pass, which lws_cancel_service forces. */
static void ws_kill(ws_conn *k, int code, const char *reason, int sync) {
  if (k->wsi == NULL) return;
  if (!k->kill_reason_set) {
    k->kill_reason_set = 1;
    k->close_code = code;
    snprintf(k->close_reason, sizeof k->close_reason, "%s", reason);
  }
  if (sync) {
    lws_set_timeout(k->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
  } else {
    lws_set_timeout(k->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    if (k->w->ctx != NULL) lws_cancel_service(k->w->ctx);
  }
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
    ws_emit_error(k, "connect timeout");
    if (k->wsi != NULL) {
      ws_kill(k, 1006, "connect timeout", 1);
    } else {
      ws_cancel_gai(k);
      ws_lost(k, 1006, "connect timeout");
    }
    break;
  case WS_MAIN_BACKOFF:
    if (k->state == WS_WAITING && !k->user_closed && !k->dead) {
      k->reconnects++;
      ws_start_attempt(k);
    }
    break;
  case WS_MAIN_NOTIFY_CLOSED:
    lua_pushinteger(k->c->L, k->close_code);
    lua_pushstring(k->c->L, k->close_reason);
    lua_pushboolean(k->c->L, 0);
    ws_call(k, k->on_close, 3);
    ws_unanchor(k);
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
  if (k->state != WS_OPEN || k->wsi == NULL) return;
  if (k->ping_phase == 1) {
    if (k->last_rx_at >= k->ping_sent_at) {
      /* answered: next ping one interval after the previous one */
      uint64_t wait = k->ping_interval > k->pong_timeout ? k->ping_interval - k->pong_timeout : 1;
      k->ping_phase = 0;
      uv_timer_start(&k->t_ping, ws_ping_cb, wait, 0);
    } else {
      core_log(k->c, CORE_LOG_WARN, "ws %s: no pong within %llu ms, reconnecting", k->host,
               (unsigned long long)k->pong_timeout);
      ws_kill(k, 1006, "pong timeout", 1);
    }
    return;
  }
  k->ping_phase = 1;
  k->ping_pending = 1;
  k->ping_sent_at = now;
  lws_callback_on_writable(k->wsi);
  uv_timer_start(&k->t_ping, ws_ping_cb, k->pong_timeout, 0);
}

/* ---------------------------------------------------------------- lws context */

static int ws_lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);

static const struct lws_protocols ws_protocols[] = {
  {"ari-ws", ws_lws_cb, 0, 65536, 0, NULL, 0},
  {NULL, NULL, 0, 0, 0, NULL, 0}};

/* lws's own idle pings are pushed out of the way: ours run on uv timers. */
static const lws_retry_bo_t ws_retry_policy = {
  .retry_ms_table = NULL, .retry_ms_table_count = 0, .conceal_count = 0,
  .secs_since_valid_ping = 65535, .secs_since_valid_hangup = 65535, .jitter_percent = 0};

static void ws_lws_log(int level, const char *line) {
  (void)level;
  fprintf(stderr, "[lws] %s", line);
}

static void ws_shutdown(core_loop *c, void *ud);

static ws_ctx *ws_get_ctx(lua_State *L, core_loop *c) {
  ws_ctx *w;
  lua_getfield(L, LUA_REGISTRYINDEX, WS_CTX_KEY);
  w = (ws_ctx *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (w != NULL) return w;
  w = calloc(1, sizeof *w);
  if (w == NULL) return NULL;
  w->c = c;
  lua_pushlightuserdata(L, w);
  lua_setfield(L, LUA_REGISTRYINDEX, WS_CTX_KEY);
  core_on_shutdown(c, ws_shutdown, w);
  return w;
}

/* Handles that existed before lws_create_context, so that the ones lws
 * adds (its idle, timers, ...) can be told apart and unref'd: only our
 * connections (their sockets and timers) keep the loop alive. */
typedef struct ws_handle_set {
  uv_handle_t **h;
  size_t n, cap;
  int failed;
} ws_handle_set;

static void ws_collect(uv_handle_t *h, void *arg) {
  ws_handle_set *s = (ws_handle_set *)arg;
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    uv_handle_t **nh = realloc(s->h, cap * sizeof *nh);
    if (nh == NULL) {
      s->failed = 1;
      return;
    }
    s->h = nh;
    s->cap = cap;
  }
  s->h[s->n++] = h;
}

static void ws_unref_new(uv_handle_t *h, void *arg) {
  ws_handle_set *s = (ws_handle_set *)arg;
  size_t i;
  for (i = 0; i < s->n; i++)
    if (s->h[i] == h) return;
  if (!uv_is_closing(h)) uv_unref(h);
}

static int ws_ensure_lws(ws_ctx *w, char *err, size_t errlen) {
  struct lws_context_creation_info info;
  void *loops[1];
  ws_handle_set before = {NULL, 0, 0, 0};
  if (w->ctx != NULL) return 0;
  uv_walk(&w->c->uv, ws_collect, &before);
  lws_set_log_level(getenv("ARI_LWS_LOG") ? atoi(getenv("ARI_LWS_LOG")) : LLL_ERR, ws_lws_log);
  memset(&info, 0, sizeof info);
  loops[0] = &w->c->uv;
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
  info.foreign_loops = loops;
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = ws_protocols;
  info.gid = -1;
  info.uid = -1;
  info.retry_and_idle_policy = &ws_retry_policy;
  info.pcontext = &w->ctx;
  info.timeout_secs = 30;
  w->ctx = lws_create_context(&info);
  if (w->ctx != NULL && !before.failed) uv_walk(&w->c->uv, ws_unref_new, &before);
  free(before.h);
  if (w->ctx == NULL) {
    snprintf(err, errlen, "libwebsockets: cannot create context (libuv event lib plugin missing?)");
    return -1;
  }
  return 0;
}

static struct lws_vhost *ws_vhost_for(ws_ctx *w, const char *cainfo) {
  struct ws_vhost *v;
  struct lws_context_creation_info info;
  for (v = w->vhosts; v != NULL; v = v->next)
    if (strcmp(v->cainfo, cainfo) == 0) return v->vh;
  v = calloc(1, sizeof *v);
  if (v == NULL) return NULL;
  v->cainfo = ws_strdup(cainfo);
  memset(&info, 0, sizeof info);
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.protocols = ws_protocols;
  info.vhost_name = v->cainfo;
  info.client_ssl_ca_filepath = v->cainfo;
  info.retry_and_idle_policy = &ws_retry_policy;
  v->vh = v->cainfo ? lws_create_vhost(w->ctx, &info) : NULL;
  if (v->vh == NULL) {
    free(v->cainfo);
    free(v);
    return NULL;
  }
  v->next = w->vhosts;
  w->vhosts = v;
  return v->vh;
}

/* ---------------------------------------------------------------- connecting */

static void ws_connect_addr(ws_conn *k, const char *addr) {
  struct lws_client_connect_info ci;
  int destroys;
  char err[160];
  memset(&ci, 0, sizeof ci);
  if (ws_ensure_lws(k->w, err, sizeof err) != 0) {
    ws_emit_error(k, err);
    ws_lost(k, 1006, err);
    return;
  }
  ci.context = k->w->ctx;
  ci.address = addr;
  ci.port = k->port;
  ci.path = k->path;
  ci.host = k->hosthdr;
  ci.origin = k->hosthdr;
  ci.protocol = k->protocol;
  ci.local_protocol_name = ws_protocols[0].name;
  ci.userdata = k;
  ci.pwsi = &k->wsi;
  ci.retry_and_idle_policy = &ws_retry_policy;
  if (k->tls) {
    ci.ssl_connection = LCCSCF_USE_SSL;
    if (k->insecure)
      ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK |
                           LCCSCF_ALLOW_EXPIRED | LCCSCF_ALLOW_INSECURE;
    if (k->cainfo != NULL) {
      ci.vhost = ws_vhost_for(k->w, k->cainfo);
      if (ci.vhost == NULL) {
        snprintf(err, sizeof err, "cannot load CA file %s", k->cainfo);
        ws_emit_error(k, err);
        ws_lost(k, 1006, err);
        return;
      }
    }
  }
  k->wsi_opened = 0;
  k->kill_reason_set = 0;
  /* lws has no WSI_CREATE for client wsis: count one now; WSI_DESTROY
   * takes it back, also when the connect fails inside the call. */
  k->nwsi++;
  destroys = k->destroys;
  if (lws_client_connect_via_info(&ci) == NULL) {
    if (k->destroys == destroys) k->nwsi--; /* scrubbed without WSI_DESTROY */
    k->wsi = NULL;
    /* an error callback may already have run (then the state moved on) */
    if (k->state == WS_CONNECTING) {
      ws_emit_error(k, "connect failed");
      ws_lost(k, 1006, "connect failed");
    }
  }
}

static void ws_gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  ws_gai *g = (ws_gai *)req->data;
  ws_conn *k = g->conn;
  char addr[64];
  char err[256];
  addr[0] = '\0';
  if (k != NULL && status == 0 && res != NULL) {
    if (res->ai_family == AF_INET6)
      uv_ip6_name((struct sockaddr_in6 *)res->ai_addr, addr, sizeof addr);
    else
      uv_ip4_name((struct sockaddr_in *)res->ai_addr, addr, sizeof addr);
  }
  if (res) uv_freeaddrinfo(res);
  free(g);
  if (k == NULL) return;
  k->gai = NULL;
  if (k->state != WS_CONNECTING) return;
  if (status != 0 || addr[0] == '\0') {
    snprintf(err, sizeof err, "cannot resolve %s: %s", k->host, status ? uv_strerror(status) : "no address");
    ws_emit_error(k, err);
    ws_lost(k, 1006, err);
    return;
  }
  ws_connect_addr(k, addr);
}

static void ws_start_attempt(ws_conn *k) {
  struct addrinfo hints;
  ws_gai *g;
  int rc;
  k->state = WS_CONNECTING;
  ws_main_start(k, WS_MAIN_CONNECT_TIMEOUT, k->connect_timeout);
  g = calloc(1, sizeof *g);
  if (g == NULL) {
    ws_lost(k, 1006, "out of memory");
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
    ws_emit_error(k, err);
    ws_lost(k, 1006, err);
  }
}

/* The current attempt or connection is over (wsi already gone). */
static void ws_lost(ws_conn *k, int code, const char *reason) {
  int was_open = k->state == WS_OPEN;
  int again;
  if (k->state == WS_CLOSED || k->state == WS_WAITING) return;
  k->wsi = NULL;
  uv_timer_stop(&k->t_ping);
  ws_main_stop(k);
  ws_rx_reset(k);
  ws_txq_clear(k);
  k->ping_pending = k->close_pending = k->close_sent = 0;
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
  if (was_open || !again) {
    lua_pushinteger(k->c->L, code);
    lua_pushstring(k->c->L, reason);
    lua_pushboolean(k->c->L, again);
    ws_call(k, k->on_close, 3);
  }
  if (k->state == WS_CLOSED) ws_unanchor(k);
}

/* ---------------------------------------------------------------- lws callback */

static void ws_deliver(ws_conn *k) {
  lua_State *L = k->c->L;
  k->messages++;
  if (!ws_can_call(k) || k->on_message == LUA_NOREF) return;
  if (k->json && !k->rx_binary) {
#ifdef WS_HAVE_JSON
    char err[256];
    int top = lua_gettop(L);
    err[0] = '\0';
    if (json_decode_buf(L, k->rx.p ? k->rx.p : "", k->rx.len, err, sizeof err) == 0) {
      ws_call(k, k->on_message, 1);
      return;
    }
    lua_settop(L, top);
    lua_pushnil(L);
    lua_pushstring(L, err[0] ? err : "invalid JSON");
#else
    lua_pushnil(L);
    lua_pushstring(L, "JSON decoding is not available in this build");
#endif
    lua_pushlstring(L, k->rx.p ? k->rx.p : "", k->rx.len);
    ws_call(k, k->on_message, 3);
    return;
  }
  lua_pushlstring(L, k->rx.p ? k->rx.p : "", k->rx.len);
  lua_pushboolean(L, k->rx_binary);
  ws_call(k, k->on_message, 2);
}

static void ws_receive(ws_conn *k, struct lws *wsi, const char *in, size_t len) {
  int final;
  k->last_rx_at = uv_now(&k->c->uv);
  if (!k->rx_in_message) {
    k->rx_in_message = 1;
    k->rx.len = 0;
    k->rx_dropping = 0;
    k->rx_binary = lws_frame_is_binary(wsi);
  }
  final = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
  if (!k->rx_dropping) {
    if (k->rx.len + len > k->max_message) {
      k->rx_dropping = 1;
      k->dropped++;
      core_log(k->c, CORE_LOG_ERROR, "ws %s: message larger than max_message (%zu bytes) dropped", k->host,
               k->max_message);
      k->rx.len = 0;
    } else if (buf_add(&k->rx, in, len) != 0) {
      k->rx_dropping = 1;
      k->dropped++;
      core_log(k->c, CORE_LOG_ERROR, "ws %s: out of memory, message dropped", k->host);
    }
  }
  if (final) {
    if (!k->rx_dropping) ws_deliver(k);
    ws_rx_reset(k);
  }
}

static int ws_writeable(ws_conn *k, struct lws *wsi) {
  if (k->close_pending) {
    /* Our own close frame: lws 4.1 on libuv kills the socket before
     * writing the one prepared by lws_close_reason.  The peer's answering
     * close ends the connection (WS_PEER_INITIATED_CLOSE returns -1). */
    unsigned char buf[LWS_PRE + 2];
    k->close_pending = 0;
    k->close_sent = 1;
    buf[LWS_PRE] = (unsigned char)(k->close_code >> 8);
    buf[LWS_PRE + 1] = (unsigned char)(k->close_code & 0xff);
    if (lws_write(wsi, buf + LWS_PRE, 2, WS_WRITE_CLOSE) < 0) return -1;
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, 3);
    return 0;
  }
  if (k->ping_pending) {
    unsigned char buf[LWS_PRE + 4];
    k->ping_pending = 0;
    if (lws_write(wsi, buf + LWS_PRE, 0, LWS_WRITE_PING) < 0) return -1;
  } else if (k->txq != NULL) {
    ws_msg *m = k->txq;
    k->txq = m->next;
    if (k->txq == NULL) k->txq_tail = NULL;
    k->tx_bytes -= m->len;
    if (lws_write(wsi, m->data + LWS_PRE, m->len, LWS_WRITE_TEXT) < (int)m->len) {
      free(m);
      return -1;
    }
    free(m);
  }
  if (k->ping_pending || k->txq != NULL) lws_callback_on_writable(wsi);
  return 0;
}

static int ws_lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
  ws_conn *k = (ws_conn *)user;
  switch (reason) {
  case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
    unsigned char **p = (unsigned char **)in, *end = *p + len;
    int i;
    if (k == NULL) break;
    for (i = 0; i < k->nhdrs; i++)
      if (lws_add_http_header_by_name(wsi, (const unsigned char *)k->hdr_names[i],
                                      (const unsigned char *)k->hdr_values[i],
                                      (int)strlen(k->hdr_values[i]), p, end))
        return -1;
    break;
  }
  case LWS_CALLBACK_CLIENT_ESTABLISHED:
    if (k == NULL || k->wsi != wsi) break;
    k->wsi_opened = 1;
    k->state = WS_OPEN;
    k->attempt = 0;
    k->last_rx_at = uv_now(&k->c->uv);
    ws_main_stop(k);
    if (k->user_closed || k->dead) {
      k->close_pending = 1;
      lws_callback_on_writable(wsi);
      break;
    }
    if (k->ping_interval > 0) {
      k->ping_phase = 0;
      uv_timer_start(&k->t_ping, ws_ping_cb, k->ping_interval, 0);
    }
    ws_call(k, k->on_open, 0);
    break;
  case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
    char msg[256];
    if (k == NULL || k->wsi != wsi) break;
    k->wsi = NULL;
    if (k->kill_reason_set) {
      ws_lost(k, k->close_code, k->close_reason);
      break;
    }
    snprintf(msg, sizeof msg, "connection to %s:%d failed: %.*s", k->host, k->port,
             in ? (int)(len > 200 ? 200 : len) : 7, in ? (const char *)in : "unknown");
    ws_emit_error(k, msg);
    ws_lost(k, 1006, msg);
    break;
  }
  case LWS_CALLBACK_CLIENT_RECEIVE:
    if (k == NULL || k->wsi != wsi) break;
    ws_receive(k, wsi, (const char *)in, len);
    break;
  case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
    if (k == NULL || k->wsi != wsi) break;
    k->last_rx_at = uv_now(&k->c->uv);
    break;
  case LWS_CALLBACK_CLIENT_WRITEABLE:
    if (k == NULL || k->wsi != wsi) break;
    return ws_writeable(k, wsi);
  case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
    if (k == NULL || k->wsi != wsi) break;
    if (k->close_sent) return -1; /* the answer to ours: just close */
    if (!k->kill_reason_set) {
      const unsigned char *b = (const unsigned char *)in;
      k->kill_reason_set = 1;
      k->close_code = len >= 2 ? (b[0] << 8) | b[1] : 1005;
      snprintf(k->close_reason, sizeof k->close_reason, "%.*s", len > 2 ? (int)(len - 2 > 120 ? 120 : len - 2) : 0,
               len > 2 ? (const char *)b + 2 : "");
    }
    break;
  case LWS_CALLBACK_CLIENT_CLOSED:
    if (k == NULL || k->wsi != wsi) break;
    k->wsi = NULL;
    if (k->kill_reason_set) ws_lost(k, k->close_code, k->close_reason);
    else ws_lost(k, 1006, "connection lost");
    break;
  case LWS_CALLBACK_WSI_DESTROY:
    if (k == NULL) break;
    k->nwsi--;
    k->destroys++;
    if (k->wsi == wsi) {
      k->wsi = NULL;
      ws_lost(k, k->kill_reason_set ? k->close_code : 1006,
              k->kill_reason_set ? k->close_reason : "connection lost");
    }
    ws_maybe_free(k);
    break;
  default:
    break;
  }
  return 0;
}

/* ---------------------------------------------------------------- Lua API */

static ws_conn *ws_check(lua_State *L) {
  ws_conn **p = (ws_conn **)luaL_checkudata(L, 1, WS_CONN_MT);
  if (*p == NULL) luaL_error(L, "websocket connection is gone");
  return *p;
}

static uint64_t ws_opt_ms(lua_State *L, int t, const char *name, uint64_t def) {
  lua_Integer v;
  int isnum;
  lua_getfield(L, t, name);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return def;
  }
  v = lua_tointegerx(L, -1, &isnum);
  if (!isnum || v < 0) luaL_error(L, "ws_connect: %s must be a non-negative integer", name);
  lua_pop(L, 1);
  return (uint64_t)v;
}

static int ws_opt_bool(lua_State *L, int t, const char *name, int def) {
  int v;
  lua_getfield(L, t, name);
  v = lua_isnil(L, -1) ? def : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

static const char *ws_opt_str(lua_State *L, int t, const char *name) {
  const char *s;
  lua_getfield(L, t, name);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return NULL;
  }
  s = lua_tostring(L, -1);
  if (s == NULL) luaL_error(L, "ws_connect: %s must be a string", name);
  lua_pop(L, 1); /* still referenced by the opts table */
  return s;
}

static int ws_handler_ref(lua_State *L, int t, const char *name) {
  int ref;
  lua_getfield(L, t, name);
  if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
    luaL_error(L, "ws_connect: handler %s must be a function", name);
  ref = core_ref(L, -1);
  lua_pop(L, 1);
  return ref;
}

/* Parse ws[s]://host[:port][/path][?query] into k.  0 or -1 with err. */
static int ws_parse_url(ws_conn *k, const char *url, char *err, size_t errlen) {
  const char *p, *hs, *he, *rest;
  int defport;
  long port;
  if (strncmp(url, "ws://", 5) == 0) {
    k->tls = 0;
    p = url + 5;
    defport = 80;
  } else if (strncmp(url, "wss://", 6) == 0) {
    k->tls = 1;
    p = url + 6;
    defport = 443;
  } else {
    snprintf(err, errlen, "url must start with ws:// or wss://");
    return -1;
  }
  if (strpbrk(p, "@") != NULL && strpbrk(p, "@") < p + strcspn(p, "/?")) {
    snprintf(err, errlen, "credentials in the url are not supported (use headers)");
    return -1;
  }
  if (*p == '[') {
    hs = p + 1;
    he = strchr(hs, ']');
    if (he == NULL) {
      snprintf(err, errlen, "bad IPv6 address in url");
      return -1;
    }
    rest = he + 1;
  } else {
    hs = p;
    he = p + strcspn(p, ":/?#");
    rest = he;
  }
  if (he == hs) {
    snprintf(err, errlen, "url has no host");
    return -1;
  }
  port = defport;
  if (*rest == ':') {
    char *endp;
    port = strtol(rest + 1, &endp, 10);
    if (endp == rest + 1 || port <= 0 || port > 65535 || (*endp && !strchr("/?#", *endp))) {
      snprintf(err, errlen, "bad port in url");
      return -1;
    }
    rest = endp;
  }
  k->port = (int)port;
  k->host = ws_strndup(hs, (size_t)(he - hs));
  {
    size_t n = (size_t)(he - hs) + 16;
    k->hosthdr = malloc(n);
    if (k->hosthdr) {
      int v6 = *p == '[';
      if (port == defport) snprintf(k->hosthdr, n, "%s%s%s", v6 ? "[" : "", k->host, v6 ? "]" : "");
      else snprintf(k->hosthdr, n, "%s%s%s:%ld", v6 ? "[" : "", k->host, v6 ? "]" : "", port);
    }
  }
  if (*rest == '/' || *rest == '?') {
    size_t n = strcspn(rest, "#");
    if (*rest == '?') {
      k->path = malloc(n + 2);
      if (k->path) {
        k->path[0] = '/';
        memcpy(k->path + 1, rest, n);
        k->path[n + 1] = '\0';
      }
    } else {
      k->path = ws_strndup(rest, n);
    }
  } else {
    k->path = ws_strdup("/");
  }
  if (k->host == NULL || k->hosthdr == NULL || k->path == NULL) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  return 0;
}

static int ws_headers(lua_State *L, ws_conn *k, int t, char *err, size_t errlen) {
  int n = 0;
  lua_getfield(L, t, "headers");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    snprintf(err, errlen, "headers must be a table");
    return -1;
  }
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    n++;
    lua_pop(L, 1);
  }
  k->hdr_names = calloc((size_t)n + 1, sizeof(char *));
  k->hdr_values = calloc((size_t)n + 1, sizeof(char *));
  if (!k->hdr_names || !k->hdr_values) {
    lua_pop(L, 1);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    size_t nl, vl;
    const char *name, *value;
    if (lua_type(L, -2) != LUA_TSTRING || (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)) {
      lua_pop(L, 3);
      snprintf(err, errlen, "headers must map names to strings");
      return -1;
    }
    name = lua_tolstring(L, -2, &nl);
    value = lua_tolstring(L, -1, &vl);
    if (nl == 0 || strpbrk(name, ":\r\n ") || strpbrk(value, "\r\n") || strlen(value) != vl) {
      lua_pop(L, 3);
      snprintf(err, errlen, "invalid header %s", name);
      return -1;
    }
    k->hdr_names[k->nhdrs] = malloc(nl + 2);
    k->hdr_values[k->nhdrs] = ws_strdup(value);
    if (k->hdr_names[k->nhdrs]) {
      memcpy(k->hdr_names[k->nhdrs], name, nl);
      k->hdr_names[k->nhdrs][nl] = ':';
      k->hdr_names[k->nhdrs][nl + 1] = '\0';
    }
    k->nhdrs++;
    if (k->hdr_names[k->nhdrs - 1] == NULL || k->hdr_values[k->nhdrs - 1] == NULL) {
      lua_pop(L, 3);
      snprintf(err, errlen, "out of memory");
      return -1;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 0;
}

static int ws_connect(lua_State *L) {
  core_loop *c = core_get(L);
  ws_ctx *w;
  ws_conn *k;
  ws_conn **box;
  const char *url, *protocol, *cainfo;
  uint64_t max_message, ping_interval, pong_timeout, backoff_min, backoff_max, connect_timeout;
  int reconnect, insecure, json;
  static const char *const hnames[] = {"on_open", "on_message", "on_close", "on_error"};
  int i;
  char err[200];
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  else {
    lua_settop(L, 1);
    lua_newtable(L);
  }
  /* Everything that may raise comes before any allocation. */
  url = ws_opt_str(L, 1, "url");
  if (url == NULL) return luaL_error(L, "ws_connect: url is required");
  protocol = ws_opt_str(L, 1, "protocol");
  cainfo = ws_opt_str(L, 1, "cainfo");
  max_message = ws_opt_ms(L, 1, "max_message", WS_DEFAULT_MAX_MESSAGE);
  ping_interval = ws_opt_ms(L, 1, "ping_interval", 15000);
  pong_timeout = ws_opt_ms(L, 1, "pong_timeout", 5000);
  backoff_min = ws_opt_ms(L, 1, "backoff_min", 250);
  backoff_max = ws_opt_ms(L, 1, "backoff_max", 30000);
  connect_timeout = ws_opt_ms(L, 1, "connect_timeout", 5000);
  reconnect = ws_opt_bool(L, 1, "reconnect", 1);
  insecure = ws_opt_bool(L, 1, "insecure", 0);
  json = ws_opt_bool(L, 1, "json", 0);
  for (i = 0; i < 4; i++) {
    lua_getfield(L, 2, hnames[i]);
    if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
      return luaL_error(L, "ws_connect: handler %s must be a function", hnames[i]);
    lua_pop(L, 1);
  }
  w = ws_get_ctx(L, c);
  if (w == NULL) return luaL_error(L, "out of memory");
  if (w->shutting_down) return luaL_error(L, "ws_connect: shutting down");

  k = calloc(1, sizeof *k);
  if (k == NULL) return luaL_error(L, "out of memory");
  k->c = c;
  k->w = w;
  k->on_open = k->on_message = k->on_close = k->on_error = LUA_NOREF;
  k->self_ref = LUA_NOREF;
  k->state = WS_CLOSED;
  k->next = w->conns;
  if (w->conns) w->conns->prev = k;
  w->conns = k;

  if (ws_parse_url(k, url, err, sizeof err) != 0 || ws_headers(L, k, 1, err, sizeof err) != 0) {
    ws_conn_free(k);
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  if (protocol != NULL) k->protocol = ws_strdup(protocol);
  if (cainfo != NULL) k->cainfo = ws_strdup(cainfo);
  k->max_message = max_message ? (size_t)max_message : WS_DEFAULT_MAX_MESSAGE;
  k->ping_interval = ping_interval;
  k->pong_timeout = pong_timeout ? pong_timeout : 1;
  k->backoff_min = backoff_min ? backoff_min : 1;
  k->backoff_max = backoff_max < k->backoff_min ? k->backoff_min : backoff_max;
  k->connect_timeout = connect_timeout ? connect_timeout : 5000;
  k->reconnect = reconnect;
  k->insecure = insecure;
  k->json = json;

  k->on_open = ws_handler_ref(L, 2, "on_open");
  k->on_message = ws_handler_ref(L, 2, "on_message");
  k->on_close = ws_handler_ref(L, 2, "on_close");
  k->on_error = ws_handler_ref(L, 2, "on_error");

  uv_timer_init(&c->uv, &k->t_main);
  uv_timer_init(&c->uv, &k->t_ping);
  k->t_main.data = k;
  k->t_ping.data = k;
  k->timers_open = 2;

  box = (ws_conn **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = k;
  k->box = box;
  luaL_setmetatable(L, WS_CONN_MT);
  k->self_ref = core_ref(L, -1);
  ws_start_attempt(k);
  return 1;
}

static int ws_send(lua_State *L) {
  ws_conn *k = ws_check(L);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  ws_msg *m;
  if (k->state != WS_OPEN || k->wsi == NULL || k->user_closed) {
    lua_pushnil(L);
    lua_pushstring(L, "websocket is not open");
    return 2;
  }
  if (k->tx_bytes + n > WS_MAX_QUEUED) {
    lua_pushnil(L);
    lua_pushstring(L, "send queue full");
    return 2;
  }
  m = malloc(sizeof *m + LWS_PRE + n);
  if (m == NULL) {
    lua_pushnil(L);
    lua_pushstring(L, "out of memory");
    return 2;
  }
  m->next = NULL;
  m->len = n;
  memcpy(m->data + LWS_PRE, s, n);
  if (k->txq_tail) k->txq_tail->next = m;
  else k->txq = m;
  k->txq_tail = m;
  k->tx_bytes += n;
  lws_callback_on_writable(k->wsi);
  lua_pushboolean(L, 1);
  return 1;
}

/* Stop for good: close the wsi (gracefully when open), no reconnects. */
static void ws_close_conn(ws_conn *k) {
  if (k->user_closed) return;
  k->user_closed = 1;
  uv_timer_stop(&k->t_ping);
  switch (k->state) {
  case WS_OPEN:
    if (k->wsi != NULL) {
      k->kill_reason_set = 1;
      k->close_code = 1000;
      snprintf(k->close_reason, sizeof k->close_reason, "closed by client");
      k->close_pending = 1;
      lws_callback_on_writable(k->wsi);
      /* in case the peer never acknowledges */
      lws_set_timeout(k->wsi, PENDING_TIMEOUT_USER_OK, 5);
    }
    break;
  case WS_CONNECTING:
    if (k->wsi != NULL) {
      ws_kill(k, 1000, "closed by client", 0);
    } else {
      ws_cancel_gai(k);
      k->state = WS_CLOSED;
      k->close_code = 1000;
      snprintf(k->close_reason, sizeof k->close_reason, "closed by client");
      ws_main_start(k, WS_MAIN_NOTIFY_CLOSED, 0);
    }
    break;
  case WS_WAITING:
    k->state = WS_CLOSED;
    k->close_code = 1000;
    snprintf(k->close_reason, sizeof k->close_reason, "closed by client");
    ws_main_start(k, WS_MAIN_NOTIFY_CLOSED, 0);
    break;
  default:
    break;
  }
}

static int ws_closef(lua_State *L) {
  ws_close_conn(ws_check(L));
  return 0;
}

static int ws_statef(lua_State *L) {
  ws_conn *k = ws_check(L);
  lua_pushstring(L, ws_state_names[k->state]);
  return 1;
}

static int ws_statsf(lua_State *L) {
  ws_conn *k = ws_check(L);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, k->reconnects);
  lua_setfield(L, -2, "reconnects");
  lua_pushinteger(L, k->messages);
  lua_setfield(L, -2, "messages");
  lua_pushinteger(L, k->dropped);
  lua_setfield(L, -2, "dropped");
  lua_pushinteger(L, (lua_Integer)k->tx_bytes);
  lua_setfield(L, -2, "queued");
  return 1;
}

/* The Lua value is gone: reached only once unanchored (closed) or at
 * lua_close.  Make sure nothing calls Lua any more and release what we can. */
static int ws_gc(lua_State *L) {
  ws_conn **p = (ws_conn **)luaL_checkudata(L, 1, WS_CONN_MT);
  ws_conn *k = *p;
  if (k == NULL) return 0;
  *p = NULL;
  k->box = NULL;
  k->user_closed = 1;
  k->dead = 1;
  k->self_ref = LUA_NOREF; /* collected, so the anchor is already gone */
  ws_release_refs(k);
  ws_cancel_gai(k);
  if (k->wsi != NULL) ws_kill(k, 1001, "going away", 0);
  ws_close_timers(k);
  return 0;
}

static int ws_tostring(lua_State *L) {
  ws_conn **p = (ws_conn **)luaL_checkudata(L, 1, WS_CONN_MT);
  if (*p == NULL) lua_pushliteral(L, "ws connection (gone)");
  else lua_pushfstring(L, "ws connection %s:%d (%s)", (*p)->host, (*p)->port, ws_state_names[(*p)->state]);
  return 1;
}

/* ---------------------------------------------------------------- shutdown */

static void ws_shutdown(core_loop *c, void *ud) {
  ws_ctx *w = (ws_ctx *)ud;
  ws_conn *k, *next;
  struct ws_vhost *v;
  int i;
  w->shutting_down = 1;
  for (k = w->conns; k != NULL; k = next) {
    next = k->next;
    k->dead = 1;
    k->user_closed = 1;
    if (k->box) *k->box = NULL;
    k->box = NULL;
    k->on_open = k->on_message = k->on_close = k->on_error = LUA_NOREF;
    k->self_ref = LUA_NOREF;
    ws_cancel_gai(k);
    ws_close_timers(k);
  }
  if (w->ctx != NULL) {
    lws_context_destroy(w->ctx);
    /* lws closes its uv handles asynchronously; on a foreign loop it only
     * finishes (and writes NULL to w->ctx through info.pcontext) when
     * lws_context_destroy is called again after the closes completed. */
    for (i = 0; i < 50 && w->ctx != NULL; i++) {
      int j;
      for (j = 0; j < 10; j++) uv_run(&c->uv, UV_RUN_NOWAIT);
      if (w->ctx != NULL) lws_context_destroy(w->ctx);
    }
    if (w->ctx != NULL) core_log(c, CORE_LOG_ERROR, "ws: libwebsockets context did not finish closing");
  }
  for (i = 0; i < 100 && w->conns != NULL; i++) uv_run(&c->uv, UV_RUN_NOWAIT);
  while ((v = w->vhosts) != NULL) {
    w->vhosts = v->next;
    free(v->cainfo);
    free(v);
  }
  /* If lws did not finish, leaking is safer than freeing what it may
   * still call back into. */
  if (w->conns == NULL && w->ctx == NULL) free(w);
  else {
    for (k = w->conns; k != NULL; k = k->next)
      core_log(c, CORE_LOG_ERROR, "ws: %s:%d still referenced at shutdown (wsi %d, timers %d)", k->host, k->port,
               k->nwsi, k->timers_open);
  }
}

void ws_open(lua_State *L) {
  static const luaL_Reg m[] = {{"send", ws_send},     {"close", ws_closef}, {"state", ws_statef},
                               {"stats", ws_statsf},  {"__gc", ws_gc},      {"__tostring", ws_tostring},
                               {NULL, NULL}};
  luaL_newmetatable(L, WS_CONN_MT);
  luaL_setfuncs(L, m, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_pushcfunction(L, ws_connect);
  lua_setfield(L, -2, "ws_connect");
}
