/* ws_lws.c - the WebSocket client's connections over libwebsockets on the
 * shared libuv loop (ws.c is its Lua face: core.ws_connect, the conn
 * class, the handler calls).
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
 * What happens is told to Lua through ws.c's ws_emit_* functions; no Lua
 * values are made here.
 *
 * Lifetime: a conn that is not closed is anchored in the registry (its
 * callbacks keep running even if Lua drops the value).  Its memory is freed
 * here once the Lua value is gone (or the state closes), no wsi refers to
 * it and its timers have closed.
 */
#include "ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WS_MAX_QUEUED (64u * 1024u * 1024u)
/* lws's private opcode for a close frame (LWS_WRITE_CLOSE, not exported by
 * the 4.1 headers; the value is part of its ABI). */
#define WS_WRITE_CLOSE ((enum lws_write_protocol)4)

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

enum { WS_MAIN_IDLE, WS_MAIN_CONNECT_TIMEOUT, WS_MAIN_BACKOFF, WS_MAIN_NOTIFY_CLOSED };

static void ws_lost(ws_conn *k, int code, const char *reason);

/* ---------------------------------------------------------------- helpers */

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

void ws_conn_free(ws_conn *k) {
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
    ws_emit_close(k, k->close_code, k->close_reason, 0);
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
  v->cainfo = strdup(cainfo);
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

void ws_start_attempt(ws_conn *k) {
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
    ws_emit_close(k, code, reason, again);
  }
  if (k->state == WS_CLOSED) ws_unanchor(k);
}

/* ---------------------------------------------------------------- lws callback */

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
    if (!k->rx_dropping) ws_emit_message(k);
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
    ws_emit_open(k);
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

/* ---------------------------------------------------------------- for ws.c's class */

const char *ws_enqueue(ws_conn *k, const char *s, size_t n) {
  ws_msg *m;
  if (k->state != WS_OPEN || k->wsi == NULL || k->user_closed) return "websocket is not open";
  if (k->tx_bytes + n > WS_MAX_QUEUED) return "send queue full";
  m = malloc(sizeof *m + LWS_PRE + n);
  if (m == NULL) return "out of memory";
  m->next = NULL;
  m->len = n;
  memcpy(m->data + LWS_PRE, s, n);
  if (k->txq_tail) k->txq_tail->next = m;
  else k->txq = m;
  k->txq_tail = m;
  k->tx_bytes += n;
  lws_callback_on_writable(k->wsi);
  return NULL;
}

/* Stop for good: close the wsi (gracefully when open), no reconnects. */
void ws_close_conn(ws_conn *k) {
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

void ws_abandon(ws_conn *k) {
  k->user_closed = 1;
  k->dead = 1;
  ws_cancel_gai(k);
  if (k->wsi != NULL) ws_kill(k, 1001, "going away", 0);
  ws_close_timers(k);
}

/* ---------------------------------------------------------------- shutdown */

void ws_shutdown(core_loop *c, void *ud) {
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

