/* server.c - HTTP/1.1 + RFC 6455 WebSocket server on raw libuv TCP: the
 * sockets, the connections, request dispatch and the Lua classes server and
 * res.  Requests are parsed by httpreq.c; an upgraded connection's frames
 * and its Lua class ws are server_ws.c's (frames coded by rfc6455.c).
 *
 * core.server_listen(opts, handlers) -> server
 *   opts = { host = "127.0.0.1", port = 0, max_body = 8 MiB, max_message =
 *   16 MiB, max_header = 64 KiB }; handlers.on_request(req, res) runs (via
 *   core_call) for every complete request.
 *
 * Per connection: a read buffer (requests are parsed from it), a pending
 * output buffer and the buffer of the one write in flight (everything sent
 * while a write is in flight is batched into the next uv_write).  Requests
 * on one connection are handed to Lua one at a time: the next pipelined
 * request is dispatched only once the previous response was sent, so
 * responses always go out in order.  Request bodies: Content-Length or
 * Transfer-Encoding: chunked (decoded); other transfer codings get 501.
 *
 * Work that follows a call from Lua (res:send, res:upgrade: parsing the next
 * request or the frames already received) is deferred to the server's idle
 * handle, so Lua callbacks never run nested inside a Lua call.
 *
 * Lifetimes: a server is freed when its two handles are closed, all its
 * connections are freed and its userdata is gone (refcount).  A connection
 * is freed when its two handles (tcp, close timer) are closed.  The res and
 * ws userdata hold a pointer to their connection, cleared when it goes.
 * A shutdown hook closes everything without calling Lua.
 *
 * Lua values built from a libuv callback (req, res, message strings) are
 * built inside a function run by core_call, never bare: running out of
 * memory there is reported through the error handler and drops only that
 * request's connection, instead of unwinding through uv_run.
 */
#include "server.h"
#include "httpreq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void srv_process(srv_conn *k);
static void srv_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void srv_on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf);
static void srv_on_idle(uv_idle_t *h);

/* ---------------------------------------------------------------- module / server lifetime */

static void srv_mod_maybe_free(srv_mod *m) {
  if (m->hook_ran && m->servers == NULL) free(m);
}

static void srv_server_unref(srv_server *s) {
  srv_server **pp;
  if (--s->refs > 0) return;
  for (pp = &s->mod->servers; *pp != NULL; pp = &(*pp)->next)
    if (*pp == s) { *pp = s->next; break; }
  if (s->box) *s->box = NULL;
  srv_mod_maybe_free(s->mod);
  free(s);
}

static void srv_server_handle_closed(uv_handle_t *h) { srv_server_unref((srv_server *)h->data); }

/* ---------------------------------------------------------------- writing */

static void srv_on_write(uv_write_t *req, int status);

void srv_flush(srv_conn *k) {
  uv_buf_t b;
  buf t;
  int r;
  if (k->closed || k->writing || k->obuf.len == 0) return;
  t = k->wbuf;
  k->wbuf = k->obuf;
  k->obuf = t;
  k->obuf.len = 0;
  b = uv_buf_init(k->wbuf.p, (unsigned int)k->wbuf.len);
  k->wreq.data = k;
  r = uv_write(&k->wreq, (uv_stream_t *)&k->tcp, &b, 1, srv_on_write);
  if (r != 0) {
    k->wbuf.len = 0;
    srv_conn_close(k);
    return;
  }
  k->writing = 1;
}

static void srv_on_write(uv_write_t *req, int status) {
  srv_conn *k = (srv_conn *)req->data;
  k->writing = 0;
  k->wbuf.len = 0;
  if (k->closed) return;
  if (status < 0) {
    srv_conn_close(k);
    return;
  }
  if (k->wbuf.cap > (4u << 20)) buf_free(&k->wbuf);
  if (k->obuf.len > 0) srv_flush(k);
  else if (k->shut) srv_conn_close(k);
}

/* Close once everything queued is written; read nothing more. */
void srv_shut(srv_conn *k) {
  if (k->closed) return;
  k->shut = 1;
  if (k->reading) {
    uv_read_stop((uv_stream_t *)&k->tcp);
    k->reading = 0;
  }
  if (!k->writing && k->obuf.len == 0) srv_conn_close(k);
  else srv_flush(k);
}

static void srv_kick(srv_conn *k) {
  srv_server *s = k->s;
  k->kick = 1;
  if (!s->idle_on && s->listening) {
    s->idle_on = 1;
    uv_idle_start(&s->idle, srv_on_idle);
  }
}

/* ---------------------------------------------------------------- connection teardown */

static void srv_conn_free(srv_conn *k) {
  srv_server *s = k->s;
  core_loop *c = s->c;
  if (k->ws && !s->quiet && !c->closing) srv_ws_closed(k);
  if (k->wsud) k->wsud->conn = NULL;
  core_unref(c, k->on_msg_ref);
  core_unref(c, k->on_close_ref);
  core_unref(c, k->ws_ref);
  buf_free(&k->rbuf);
  buf_free(&k->obuf);
  buf_free(&k->wbuf);
  buf_free(&k->msg);
  if (k->prev) k->prev->next = k->next;
  else s->conns = k->next;
  if (k->next) k->next->prev = k->prev;
  free(k);
  srv_server_unref(s);
}

static void srv_conn_handle_closed(uv_handle_t *h) {
  srv_conn *k = (srv_conn *)h->data;
  if (--k->handles == 0) srv_conn_free(k);
}

void srv_conn_close(srv_conn *k) {
  if (k->closed) return;
  k->closed = 1;
  k->s->nconn--;
  if (k->ws) k->s->nws--;
  if (k->res) {
    k->res->conn = NULL;
    k->res = NULL;
  }
  k->reading = 0;
  uv_close((uv_handle_t *)&k->tcp, srv_conn_handle_closed);
  uv_close((uv_handle_t *)&k->timer, srv_conn_handle_closed);
}

/* ---------------------------------------------------------------- HTTP requests */

/* A response generated by the server itself; the connection then closes. */
static int srv_fail(srv_conn *k, int status, const char *msg) {
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n",
                   status, httpreq_reason(status), strlen(msg) + 1);
  core_log(k->s->c, CORE_LOG_DEBUG, "server: %s: %d %s", k->remote, status, msg);
  if (buf_add(&k->obuf, head, (size_t)n) != 0 || buf_adds(&k->obuf, msg) != 0 || buf_add(&k->obuf, "\n", 1) != 0) {
    srv_conn_close(k);
    return -1;
  }
  srv_shut(k);
  return -1;
}

/* Push the request table (without body) on L. */
static void srv_push_req(lua_State *L, srv_conn *k, const httpreq *q) {
  const char *t = q->target, *qm = memchr(t, '?', q->tlen);
  size_t tl = q->tlen;
  int i;
  lua_createtable(L, 0, 9);
  lua_pushlstring(L, q->method, q->mlen);
  lua_setfield(L, -2, "method");
  lua_pushlstring(L, t, qm ? (size_t)(qm - t) : tl);
  lua_setfield(L, -2, "path");
  if (qm) lua_pushlstring(L, qm + 1, tl - (size_t)(qm - t) - 1);
  else lua_pushliteral(L, "");
  lua_setfield(L, -2, "query");
  lua_pushstring(L, q->minor ? "1.1" : "1.0");
  lua_setfield(L, -2, "version");
  lua_pushstring(L, k->remote);
  lua_setfield(L, -2, "remote");
  lua_createtable(L, 0, q->nh);
  for (i = 0; i < q->nh; i++) {
    const httpreq_hdr *h = &q->hdr[i];
    luaL_Buffer b;
    size_t j;
    luaL_buffinit(L, &b);
    for (j = 0; j < h->nlen; j++) {
      char ch = h->name[j];
      luaL_addchar(&b, (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch);
    }
    luaL_pushresult(&b);                 /* headers name */
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) == LUA_TSTRING) { /* repeated: join with ", " */
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, h->value, h->vlen);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, h->value, h->vlen);
    }
    lua_rawset(L, -3);
  }
  lua_setfield(L, -2, "headers");
}

/* One parsed request on its way to on_request (srv_dispatch_cf's argument). */
typedef struct srv_dispatch {
  srv_conn *k;
  const httpreq *q;
  const char *base;   /* the request's bytes (in k->rbuf) */
  srv_res *res;       /* set once the res userdata exists */
} srv_dispatch;

/* Called through core_call, so that running out of memory while building
 * req and res is an error reported like any other rather than a longjmp
 * through libuv: builds both, then calls on_request(req, res). */
static int srv_dispatch_cf(lua_State *L) {
  srv_dispatch *d = (srv_dispatch *)lua_touserdata(L, 1);
  srv_conn *k = d->k;
  const httpreq *q = d->q;
  srv_res *r;
  lua_settop(L, 0);
  core_push_ref(k->s->c, k->s->on_request_ref);
  srv_push_req(L, k, q);
  if (q->chunked && q->body_len > 0) {
    luaL_Buffer lb;
    httpreq_body(q, d->base, luaL_buffinitsize(L, &lb, q->body_len));
    luaL_pushresultsize(&lb, q->body_len);
  } else {
    lua_pushlstring(L, d->base + q->head_len, q->body_len);
  }
  lua_setfield(L, -2, "body");
  lua_pushboolean(L, q->websocket);
  lua_setfield(L, -2, "websocket");
  r = (srv_res *)lua_newuserdatauv(L, sizeof *r, 0);
  memset(r, 0, sizeof *r);
  luaL_setmetatable(L, SRV_RES_MT);
  r->conn = k;
  r->keepalive = q->keepalive;
  r->head = q->head;
  r->websocket = q->websocket;
  if (r->websocket) {
    memcpy(r->key, q->ws_key, q->ws_keylen);
    r->key[q->ws_keylen] = '\0';
  }
  k->busy = 1;
  k->res = r;
  d->res = r;
  lua_call(L, 2, 0);
  return 0;
}

/* The handler failed before answering: 500, the connection goes on if it may. */
static int srv_handler_failed(srv_conn *k, srv_res *r) {
  static const char body[] = "{\"message\":\"request handler failed\"}";
  char head[200];
  int hn = snprintf(head, sizeof head,
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                    "Content-Length: %zu\r\n%s\r\n",
                    sizeof body - 1, r->keepalive ? "" : "Connection: close\r\n");
  r->done = 1;
  r->conn = NULL;
  k->res = NULL;
  k->busy = 0;
  if (buf_add(&k->obuf, head, (size_t)hn) != 0 || buf_add(&k->obuf, body, sizeof body - 1) != 0) {
    srv_conn_close(k);
    return -1;
  }
  if (!r->keepalive) srv_shut(k);
  else srv_flush(k);
  return 1;
}

/* Try to parse and dispatch one request.  1 dispatched, 0 need more, -1 failed. */
static int srv_http_one(srv_conn *k) {
  srv_server *s = k->s;
  core_loop *c = s->c;
  httpreq q;
  httpreq_limits lim;
  srv_dispatch d;
  size_t skip = httpreq_skip(k->rbuf.p + k->rpos, k->rbuf.len - k->rpos);
  const char *b;
  int rc;

  if (skip > 0) {
    k->rpos += skip;
    k->scan = 0;
  }
  b = k->rbuf.p + k->rpos;
  lim.max_header = s->max_header;
  lim.max_body = s->max_body;
  rc = httpreq_parse(&q, b, k->rbuf.len - k->rpos, &k->scan, &lim);
  if (rc == HTTPREQ_ERROR) return srv_fail(k, q.status, q.error);
  if (rc == HTTPREQ_MORE) {
    if (q.expect_continue && !k->expect_sent) {
      k->expect_sent = 1;
      if (buf_adds(&k->obuf, "HTTP/1.1 100 Continue\r\n\r\n") == 0) srv_flush(k);
    }
    return 0;
  }

  k->expect_sent = 0;
  s->requests++;
  k->rpos += q.head_len + q.body_used; /* b stays valid: nothing reads into rbuf meanwhile */
  d.k = k;
  d.q = &q;
  d.base = b;
  d.res = NULL;
  lua_pushcfunction(c->L, srv_dispatch_cf);
  lua_pushlightuserdata(c->L, &d);
  if (core_call(c, 1, 0) == 0) return 1;
  if (d.res == NULL) { /* req/res could not be built: drop this connection only */
    if (!c->closing) core_log(c, CORE_LOG_ERROR, "server: %s: request dropped", k->remote);
    srv_conn_close(k);
    return -1;
  }
  if (!k->closed && k->res == d.res && !d.res->done) return srv_handler_failed(k, d.res);
  return 1;
}

/* ---------------------------------------------------------------- reading / processing */

static void srv_process(srv_conn *k) {
  size_t pending;
  int want;
  while (!k->closed && !k->shut) {
    int r;
    if (k->ws) r = srv_ws_one(k);
    else if (k->busy) break;
    else r = srv_http_one(k);
    if (r <= 0) break;
  }
  if (k->closed || k->shut) return;
  if (!k->ws && k->eof && !k->busy) {
    srv_shut(k);
    return;
  }
  if (k->eof) return;
  pending = k->rbuf.len - k->rpos;
  want = !(k->busy && !k->ws && pending > SRV_BUSY_LIMIT);
  if (want && !k->reading) {
    if (uv_read_start((uv_stream_t *)&k->tcp, srv_on_alloc, srv_on_read) == 0) k->reading = 1;
    else srv_conn_close(k);
  } else if (!want && k->reading) {
    uv_read_stop((uv_stream_t *)&k->tcp);
    k->reading = 0;
  }
}

static void srv_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  srv_conn *k = (srv_conn *)h->data;
  (void)suggested;
  buf_consume(&k->rbuf, k->rpos);
  k->rpos = 0;
  if (k->rbuf.cap - k->rbuf.len < SRV_READ_CHUNK && buf_reserve(&k->rbuf, SRV_READ_CHUNK) != 0) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  *buf = uv_buf_init(k->rbuf.p + k->rbuf.len, (unsigned int)(k->rbuf.cap - k->rbuf.len));
}

static void srv_on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
  srv_conn *k = (srv_conn *)h->data;
  (void)buf;
  if (k->closed) return;
  if (nread < 0) {
    if (nread == UV_EOF && !k->ws) {
      uv_read_stop(h);
      k->reading = 0;
      k->eof = 1;
      srv_process(k);
    } else {
      srv_conn_close(k);
    }
    return;
  }
  if (nread == 0) return;
  k->rbuf.len += (size_t)nread;
  srv_process(k);
}

static void srv_on_idle(uv_idle_t *h) {
  srv_server *s = (srv_server *)h->data;
  uv_idle_stop(h);
  s->idle_on = 0;
  for (;;) {
    srv_conn *k;
    for (k = s->conns; k != NULL; k = k->next)
      if (k->kick && !k->closed) break;
    if (k == NULL) break;
    k->kick = 0;
    srv_process(k);
  }
}

/* ---------------------------------------------------------------- accepting */

static void srv_on_conn(uv_stream_t *h, int status) {
  srv_server *s = (srv_server *)h->data;
  srv_conn *k;
  struct sockaddr_storage sa;
  int len = (int)sizeof sa;
  if (status < 0) {
    core_log(s->c, CORE_LOG_WARN, "server: accept failed: %s", uv_strerror(status));
    return;
  }
  if (!s->listening) return;
  k = calloc(1, sizeof *k);
  if (k == NULL) {
    core_log(s->c, CORE_LOG_ERROR, "server: out of memory accepting a connection");
    return;
  }
  k->s = s;
  k->ws_ref = k->on_msg_ref = k->on_close_ref = LUA_NOREF;
  k->close_code = 1006;
  k->tcp.data = k;
  k->timer.data = k;
  uv_tcp_init(&s->c->uv, &k->tcp);
  uv_timer_init(&s->c->uv, &k->timer);
  k->handles = 2;
  k->next = s->conns;
  if (s->conns) s->conns->prev = k;
  s->conns = k;
  s->refs++;
  s->nconn++;
  if (uv_accept(h, (uv_stream_t *)&k->tcp) != 0) {
    srv_conn_close(k);
    return;
  }
  s->accepted++;
  uv_tcp_nodelay(&k->tcp, 1);
  strcpy(k->remote, "?");
  if (uv_tcp_getpeername(&k->tcp, (struct sockaddr *)&sa, &len) == 0) {
    char ip[INET6_ADDRSTRLEN];
    if (sa.ss_family == AF_INET) {
      struct sockaddr_in *a = (struct sockaddr_in *)&sa;
      uv_ip4_name(a, ip, sizeof ip);
      snprintf(k->remote, sizeof k->remote, "%s:%d", ip, ntohs(a->sin_port));
    } else if (sa.ss_family == AF_INET6) {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)&sa;
      uv_ip6_name(a, ip, sizeof ip);
      snprintf(k->remote, sizeof k->remote, "[%s]:%d", ip, ntohs(a->sin6_port));
    }
  }
  if (uv_read_start((uv_stream_t *)&k->tcp, srv_on_alloc, srv_on_read) != 0) {
    srv_conn_close(k);
    return;
  }
  k->reading = 1;
}

/* Stop listening and close every connection (a WebSocket gets a 1001 close
 * frame if it can be written at once). */
static void srv_server_close(srv_server *s) {
  srv_conn *k;
  if (s->listening) {
    s->listening = 0;
    uv_close((uv_handle_t *)&s->tcp, srv_server_handle_closed);
    uv_close((uv_handle_t *)&s->idle, srv_server_handle_closed);
    core_unref(s->c, s->self_ref);
    s->self_ref = LUA_NOREF;
    core_unref(s->c, s->on_request_ref);
    s->on_request_ref = LUA_NOREF;
  }
  for (k = s->conns; k != NULL; k = k->next) {
    if (k->closed) continue;
    if (k->ws) srv_ws_going_away(k);
    srv_conn_close(k);
  }
}

static void srv_shutdown_hook(core_loop *c, void *ud) {
  srv_mod *m = (srv_mod *)ud;
  srv_server *s;
  (void)c;
  m->hook_ran = 1;
  for (s = m->servers; s != NULL; s = s->next) {
    s->quiet = 1;
    s->self_ref = LUA_NOREF; /* the registry goes away with the state */
    s->on_request_ref = LUA_NOREF;
    srv_server_close(s);
  }
  srv_mod_maybe_free(m);
}

static srv_mod *srv_get_mod(lua_State *L, core_loop *c) {
  srv_mod *m;
  lua_getfield(L, LUA_REGISTRYINDEX, SRV_MOD_KEY);
  m = (srv_mod *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (m != NULL) return m;
  m = calloc(1, sizeof *m);
  if (m == NULL) return NULL;
  m->c = c;
  core_on_shutdown(c, srv_shutdown_hook, m);
  lua_pushlightuserdata(L, m);
  lua_setfield(L, LUA_REGISTRYINDEX, SRV_MOD_KEY);
  return m;
}

/* ---------------------------------------------------------------- Lua: server */

static size_t srv_opt_size(lua_State *L, const char *name, size_t def) {
  lua_Integer v;
  int isnum;
  lua_getfield(L, 1, name);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return def;
  }
  v = lua_tointegerx(L, -1, &isnum);
  if (!isnum || v <= 0) luaL_error(L, "server_listen: %s must be a positive integer", name);
  lua_pop(L, 1);
  return (size_t)v;
}

static int srv_listen(lua_State *L) {
  core_loop *c = core_get(L);
  srv_mod *m;
  srv_server *s, **box;
  const char *host;
  lua_Integer port;
  struct sockaddr_storage sa;
  int r, len;
  size_t max_body, max_message, max_header;

  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_getfield(L, 1, "host");
  host = lua_isnil(L, -1) ? "127.0.0.1" : luaL_checkstring(L, -1);
  if (strcmp(host, "localhost") == 0) host = "127.0.0.1";
  lua_getfield(L, 1, "port");
  port = lua_isnil(L, -1) ? 0 : luaL_checkinteger(L, -1);
  lua_pop(L, 1); /* host string stays referenced by slot -1 */
  if (port < 0 || port > 65535) return luaL_error(L, "server_listen: port out of range");
  max_body = srv_opt_size(L, "max_body", 8u << 20);
  max_message = srv_opt_size(L, "max_message", 16u << 20);
  max_header = srv_opt_size(L, "max_header", 64u << 10);
  lua_getfield(L, 2, "on_request");
  if (!lua_isfunction(L, -1)) return luaL_error(L, "server_listen: handlers.on_request must be a function");
  lua_pop(L, 1);
  if (strlen(host) >= sizeof s->host) return luaL_error(L, "server_listen: host too long");

  memset(&sa, 0, sizeof sa);
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&sa) != 0 &&
      uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&sa) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "invalid listen address '%s' (an IPv4 or IPv6 literal)", host);
    return 2;
  }
  m = srv_get_mod(L, c);
  s = m ? calloc(1, sizeof *s) : NULL;
  if (s == NULL) return luaL_error(L, "out of memory");
  s->c = c;
  s->mod = m;
  s->on_request_ref = s->self_ref = LUA_NOREF;
  s->max_body = max_body;
  s->max_message = max_message;
  s->max_header = max_header;
  strcpy(s->host, host);
  s->tcp.data = s;
  s->idle.data = s;
  uv_tcp_init(&c->uv, &s->tcp);
  uv_idle_init(&c->uv, &s->idle);
  s->refs = 2;
  s->next = m->servers;
  m->servers = s;
  r = uv_tcp_bind(&s->tcp, (struct sockaddr *)&sa, 0);
  if (r == 0) r = uv_listen((uv_stream_t *)&s->tcp, 511, srv_on_conn);
  if (r != 0) {
    uv_close((uv_handle_t *)&s->tcp, srv_server_handle_closed);
    uv_close((uv_handle_t *)&s->idle, srv_server_handle_closed);
    lua_pushnil(L);
    lua_pushfstring(L, "cannot listen on %s:%d: %s", host, (int)port, uv_strerror(r));
    return 2;
  }
  len = (int)sizeof sa;
  if (uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&sa, &len) == 0)
    s->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                             : ((struct sockaddr_in *)&sa)->sin_port);
  box = (srv_server **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = s;
  s->box = box;
  s->refs++;
  luaL_setmetatable(L, SRV_SERVER_MT);
  s->listening = 1;
  s->self_ref = core_ref(L, -1);
  lua_getfield(L, 2, "on_request");
  s->on_request_ref = core_ref(L, -1);
  lua_pop(L, 1);
  return 1;
}

static srv_server *srv_check_server(lua_State *L) {
  srv_server **p = (srv_server **)luaL_checkudata(L, 1, SRV_SERVER_MT);
  if (*p == NULL) luaL_error(L, "server is gone");
  return *p;
}

static int srv_server_port(lua_State *L) {
  lua_pushinteger(L, srv_check_server(L)->port);
  return 1;
}

static int srv_server_closef(lua_State *L) {
  srv_server **p = (srv_server **)luaL_checkudata(L, 1, SRV_SERVER_MT);
  if (*p != NULL) srv_server_close(*p);
  return 0;
}

static int srv_server_stats(lua_State *L) {
  srv_server **p = (srv_server **)luaL_checkudata(L, 1, SRV_SERVER_MT);
  srv_server *s = *p;
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, s ? s->nconn : 0);
  lua_setfield(L, -2, "connections");
  lua_pushinteger(L, s ? s->accepted : 0);
  lua_setfield(L, -2, "accepted");
  lua_pushinteger(L, s ? s->requests : 0);
  lua_setfield(L, -2, "requests");
  lua_pushinteger(L, s ? s->nws : 0);
  lua_setfield(L, -2, "websockets");
  lua_pushboolean(L, s && s->listening);
  lua_setfield(L, -2, "listening");
  return 1;
}

static int srv_server_gc(lua_State *L) {
  srv_server **p = (srv_server **)luaL_checkudata(L, 1, SRV_SERVER_MT);
  srv_server *s = *p;
  if (s == NULL) return 0;
  /* only reached at lua_close while listening (an open server is anchored) */
  if (s->listening || s->conns) {
    s->quiet = 1;
    srv_server_close(s);
  }
  s->box = NULL;
  *p = NULL;
  srv_server_unref(s);
  return 0;
}

/* ---------------------------------------------------------------- Lua: res */

static srv_res *srv_check_res(lua_State *L) { return (srv_res *)luaL_checkudata(L, 1, SRV_RES_MT); }

/* The connection of an unanswered response, or NULL. */
static srv_conn *srv_res_conn(srv_res *r) {
  if (r->done || r->conn == NULL || r->conn->closed) return NULL;
  return r->conn;
}

static int srv_bad_header_text(const char *p, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    if (p[i] == '\r' || p[i] == '\n' || p[i] == '\0') return 1;
  return 0;
}

/* The request is answered: the connection goes on with the next one. */
static void srv_res_finish(srv_res *r, srv_conn *k, int close) {
  r->done = 1;
  r->conn = NULL;
  k->res = NULL;
  k->busy = 0;
  if (close) srv_shut(k);
  else {
    srv_flush(k);
    srv_kick(k);
  }
}

static int srv_res_send(lua_State *L) {
  srv_res *r = srv_check_res(L);
  lua_Integer status = luaL_checkinteger(L, 2);
  size_t blen = 0, mark;
  const char *body = luaL_optlstring(L, 4, "", &blen);
  srv_conn *k;
  int close, nobody, user_close = 0;
  char line[128];
  if (status < 100 || status > 999) return luaL_argerror(L, 2, "status must be 100..999");
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  k = srv_res_conn(r);
  if (k == NULL) {
    lua_pushboolean(L, 0);
    return 1;
  }
  /* validate the headers before writing anything */
  if (lua_istable(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3) != 0) {
      size_t nl, vl;
      const char *nm, *vv;
      if (lua_type(L, -2) != LUA_TSTRING) return luaL_error(L, "response header names must be strings");
      if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
        return luaL_error(L, "response header '%s' must be a string or number", lua_tostring(L, -2));
      nm = lua_tolstring(L, -2, &nl);
      lua_pushvalue(L, -1);
      vv = lua_tolstring(L, -1, &vl);
      if (nl == 0 || srv_bad_header_text(nm, nl) || strpbrk(nm, ": \t") != NULL)
        return luaL_error(L, "invalid response header name '%s'", nm);
      if (srv_bad_header_text(vv, vl)) return luaL_error(L, "invalid value for response header '%s'", nm);
      if (nl == 10 && strncasecmp(nm, "connection", 10) == 0 && httpreq_has_token(vv, vl, "close"))
        user_close = 1;
      lua_pop(L, 2);
    }
  }
  close = !r->keepalive || user_close || k->eof;
  nobody = status < 200 || status == 204 || status == 304;
  mark = k->obuf.len;
  snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", (int)status, httpreq_reason((int)status));
  if (buf_adds(&k->obuf, line) != 0) goto oom;
  if (lua_istable(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3) != 0) {
      size_t nl, vl;
      const char *nm = lua_tolstring(L, -2, &nl), *vv;
      lua_pushvalue(L, -1);
      vv = lua_tolstring(L, -1, &vl);
      if (!((nl == 14 && strncasecmp(nm, "content-length", 14) == 0) ||
            (nl == 17 && strncasecmp(nm, "transfer-encoding", 17) == 0))) {
        if (buf_add(&k->obuf, nm, nl) != 0 || buf_add(&k->obuf, ": ", 2) != 0 ||
            buf_add(&k->obuf, vv, vl) != 0 || buf_add(&k->obuf, "\r\n", 2) != 0)
          goto oom;
      }
      lua_pop(L, 2);
    }
  }
  if (!nobody) {
    snprintf(line, sizeof line, "Content-Length: %zu\r\n", blen);
    if (buf_adds(&k->obuf, line) != 0) goto oom;
  }
  if (close && !user_close && buf_adds(&k->obuf, "Connection: close\r\n") != 0) goto oom;
  if (buf_add(&k->obuf, "\r\n", 2) != 0) goto oom;
  if (!nobody && !r->head && buf_add(&k->obuf, body, blen) != 0) goto oom;
  srv_res_finish(r, k, close);
  lua_pushboolean(L, 1);
  return 1;
oom:
  k->obuf.len = mark;
  return luaL_error(L, "out of memory");
}

static int srv_res_upgrade(lua_State *L) {
  srv_res *r = srv_check_res(L);
  srv_conn *k = srv_res_conn(r);
  size_t pl = 0;
  const char *proto = luaL_optlstring(L, 2, NULL, &pl);
  char acc[RFC6455_ACCEPT_LEN + 1];
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  if (k == NULL) {
    lua_pushnil(L);
    lua_pushliteral(L, "connection closed or already answered");
    return 2;
  }
  if (!r->websocket) return luaL_error(L, "upgrade: not a valid WebSocket upgrade request");
  if (proto != NULL) {
    size_t i;
    if (pl == 0) return luaL_argerror(L, 2, "empty protocol");
    for (i = 0; i < pl; i++)
      if (!httpreq_tchar((unsigned char)proto[i])) return luaL_argerror(L, 2, "invalid protocol token");
  }
  rfc6455_accept(r->key, strlen(r->key), acc);
  if (buf_adds(&k->obuf, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Accept: ") != 0 ||
      buf_adds(&k->obuf, acc) != 0 || buf_adds(&k->obuf, "\r\n") != 0 ||
      (proto && (buf_adds(&k->obuf, "Sec-WebSocket-Protocol: ") != 0 ||
                 buf_add(&k->obuf, proto, pl) != 0 || buf_adds(&k->obuf, "\r\n") != 0)) ||
      buf_adds(&k->obuf, "\r\n") != 0)
    return luaL_error(L, "out of memory");
  srv_ws_attach(L, k, lua_istable(L, 3) ? 3 : 0);
  srv_res_finish(r, k, 0);
  return 1;
}

static int srv_res_raw(lua_State *L) {
  srv_res *r = srv_check_res(L);
  size_t n;
  const char *d = luaL_checklstring(L, 2, &n);
  srv_conn *k = srv_res_conn(r);
  if (k == NULL) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (buf_add(&k->obuf, d, n) != 0) return luaL_error(L, "out of memory");
  srv_flush(k);
  lua_pushboolean(L, 1);
  return 1;
}

/* Close the connection now (after what is already queued is written). */
static int srv_res_drop(lua_State *L) {
  srv_res *r = srv_check_res(L);
  srv_conn *k = srv_res_conn(r);
  if (k == NULL) {
    lua_pushboolean(L, 0);
    return 1;
  }
  r->done = 1;
  r->conn = NULL;
  k->res = NULL;
  srv_shut(k);
  lua_pushboolean(L, 1);
  return 1;
}

static int srv_res_gc(lua_State *L) {
  srv_res *r = srv_check_res(L);
  srv_conn *k = r->conn;
  if (k != NULL) {
    r->conn = NULL;
    k->res = NULL;
    /* never answered: nothing else will, so the connection goes */
    if (!r->done && !k->closed) srv_conn_close(k);
  }
  return 0;
}

/* ---------------------------------------------------------------- open */

void server_open(lua_State *L) {
  static const luaL_Reg server_m[] = {
    {"port", srv_server_port}, {"close", srv_server_closef}, {"stats", srv_server_stats},
    {"__gc", srv_server_gc}, {NULL, NULL}};
  static const luaL_Reg res_m[] = {
    {"send", srv_res_send}, {"upgrade", srv_res_upgrade}, {"raw", srv_res_raw},
    {"drop", srv_res_drop}, {"__gc", srv_res_gc}, {NULL, NULL}};
  core_newmeta(L, SRV_SERVER_MT, server_m);
  core_newmeta(L, SRV_RES_MT, res_m);
  srv_ws_open(L);
  lua_pushcfunction(L, srv_listen);
  lua_setfield(L, -2, "server_listen");
}
