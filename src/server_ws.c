/* server_ws.c - the server's WebSocket connections, after res:upgrade():
 * frames in (rfc6455.c parses them; pings answered, fragments joined,
 * on_message(ws, data, binary) per message), the closing handshake
 * (on_close(ws, code, reason) when the connection goes) and the Lua class
 * ws (send, ping, close, buffered, remote, is_open).  The sockets and the
 * HTTP side are server.c's.
 */
#include "server.h"

#include <string.h>

/* ---------------------------------------------------------------- calls into Lua */

/* A call of on_message(ws, data, binary) or on_close(ws, code, reason),
 * made through core_call by srv_ws_event_cf, so that running out of memory
 * while pushing the arguments is reported like an error of the call. */
typedef struct srv_ws_event {
  int fn_ref, ws_ref;
  const char *p;      /* message or close reason */
  size_t n;
  int binary;         /* on_message */
  int code;           /* on_close, when is_close */
  int is_close;
} srv_ws_event;

static int srv_ws_event_cf(lua_State *L) {
  srv_ws_event *e = (srv_ws_event *)lua_touserdata(L, 1);
  lua_settop(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, e->fn_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, e->ws_ref);
  if (e->is_close) lua_pushinteger(L, e->code);
  lua_pushlstring(L, e->p, e->n);
  if (!e->is_close) lua_pushboolean(L, e->binary);
  lua_call(L, 3, 0);
  return 0;
}

static void srv_ws_event_call(core_loop *c, srv_ws_event *e) {
  lua_pushcfunction(c->L, srv_ws_event_cf);
  lua_pushlightuserdata(c->L, e);
  core_call(c, 1, 0);
}

/* ---------------------------------------------------------------- WebSocket messages */

/* Fail the connection with a close code. */
static int srv_ws_fail(srv_conn *k, int code, const char *reason) {
  core_log(k->s->c, CORE_LOG_DEBUG, "server: websocket %s: close %d %s", k->remote, code, reason);
  if (!k->close_sent) {
    k->close_sent = 1;
    rfc6455_close_add(&k->obuf, code, reason, strlen(reason), NULL);
  }
  k->close_code = code;
  k->reason_len = strlen(reason);
  memcpy(k->close_reason, reason, k->reason_len);
  srv_shut(k);
  return -1;
}

static int srv_ws_deliver(srv_conn *k, const char *p, size_t n, int binary) {
  srv_ws_event e;
  if (k->on_msg_ref == LUA_NOREF) return 1;
  memset(&e, 0, sizeof e);
  e.fn_ref = k->on_msg_ref;
  e.ws_ref = k->ws_ref;
  e.p = p;
  e.n = n;
  e.binary = binary;
  srv_ws_event_call(k->s->c, &e);
  return 1;
}

/* Parse one frame.  1 handled, 0 need more, -1 closing. */
int srv_ws_one(srv_conn *k) {
  rfc6455_frame f;
  int rc;
  if (k->close_recv) {
    k->rpos = k->rbuf.len;
    return 0;
  }
  rc = rfc6455_parse(&k->wsp, (unsigned char *)k->rbuf.p + k->rpos, k->rbuf.len - k->rpos, &f);
  if (rc == 0) return 0;
  if (rc < 0) return srv_ws_fail(k, k->wsp.code, k->wsp.reason);
  k->rpos += f.size;
  switch (f.op) {
  case RFC6455_PING:
    if (!k->close_sent) {
      rfc6455_frame_add(&k->obuf, RFC6455_PONG, f.data, f.len, NULL);
      srv_flush(k);
    }
    return 1;
  case RFC6455_PONG:
    return 1;
  case RFC6455_CLOSE:
    k->close_recv = 1;
    k->close_code = f.close_code;
    k->reason_len = f.reason_len;
    memcpy(k->close_reason, f.reason, f.reason_len);
    if (!k->close_sent) {
      k->close_sent = 1;
      rfc6455_close_add(&k->obuf, f.close_code, f.reason, f.reason_len, NULL);
    }
    srv_shut(k);
    return -1;
  default:
    break;
  }
  if (f.last && f.op != RFC6455_CONT) /* a whole message in one frame */
    return srv_ws_deliver(k, (const char *)f.data, f.len, f.msg_op == RFC6455_BINARY);
  if (buf_add(&k->msg, f.data, f.len) != 0) return srv_ws_fail(k, RFC6455_INTERNAL_ERROR, "out of memory");
  if (f.last) {
    rc = srv_ws_deliver(k, k->msg.p, k->msg.len, f.msg_op == RFC6455_BINARY);
    if (!k->closed) {
      k->msg.len = 0;
      buf_shrink(&k->msg, 1u << 20);
    }
    return rc;
  }
  return 1;
}

void srv_ws_closed(srv_conn *k) {
  srv_ws_event e;
  if (k->on_close_ref == LUA_NOREF) return;
  memset(&e, 0, sizeof e);
  e.fn_ref = k->on_close_ref;
  e.ws_ref = k->ws_ref;
  e.p = k->close_reason;
  e.n = k->reason_len;
  e.code = k->close_code;
  e.is_close = 1;
  srv_ws_event_call(k->s->c, &e);
}

void srv_ws_going_away(srv_conn *k) {
  static const char reason[] = "server closing";
  uv_buf_t b;
  if (k->close_sent || k->writing) return;
  k->close_sent = 1;
  k->obuf.len = 0;
  if (rfc6455_close_add(&k->obuf, RFC6455_GOING_AWAY, reason, sizeof reason - 1, NULL) == 0) {
    b = uv_buf_init(k->obuf.p, (unsigned int)k->obuf.len);
    uv_try_write((uv_stream_t *)&k->tcp, &b, 1);
  }
  k->close_code = RFC6455_GOING_AWAY;
  k->reason_len = sizeof reason - 1;
  memcpy(k->close_reason, reason, k->reason_len);
}

void srv_ws_attach(lua_State *L, srv_conn *k, int handlers) {
  srv_ws *w = (srv_ws *)lua_newuserdatauv(L, sizeof *w, 0);
  w->conn = k;
  strcpy(w->remote, k->remote);
  luaL_setmetatable(L, SRV_WS_MT);
  k->wsud = w;
  k->ws = 1;
  rfc6455_init(&k->wsp, RFC6455_SERVER, k->s->max_message);
  k->s->nws++;
  k->ws_ref = core_ref(L, -1);
  if (handlers != 0) {
    lua_getfield(L, handlers, "on_message");
    if (lua_isfunction(L, -1)) k->on_msg_ref = core_ref(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, handlers, "on_close");
    if (lua_isfunction(L, -1)) k->on_close_ref = core_ref(L, -1);
    lua_pop(L, 1);
  }
}

/* ---------------------------------------------------------------- Lua: ws */

static srv_ws *srv_check_ws(lua_State *L) { return (srv_ws *)luaL_checkudata(L, 1, SRV_WS_MT); }

static srv_conn *srv_ws_open_conn(srv_ws *w) {
  srv_conn *k = w->conn;
  if (k == NULL || k->closed || k->shut || k->close_sent) return NULL;
  return k;
}

static int srv_ws_closed_result(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, "closed");
  return 2;
}

static int srv_ws_send(lua_State *L) {
  srv_ws *w = srv_check_ws(L);
  size_t n;
  const char *d = luaL_checklstring(L, 2, &n);
  int binary = lua_toboolean(L, 3);
  srv_conn *k = srv_ws_open_conn(w);
  if (k == NULL) return srv_ws_closed_result(L);
  if (rfc6455_frame_add(&k->obuf, binary ? RFC6455_BINARY : RFC6455_TEXT, d, n, NULL) != 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "out of memory");
    return 2;
  }
  srv_flush(k);
  lua_pushboolean(L, 1);
  return 1;
}

static int srv_ws_ping(lua_State *L) {
  srv_ws *w = srv_check_ws(L);
  size_t n = 0;
  const char *d = luaL_optlstring(L, 2, "", &n);
  srv_conn *k = srv_ws_open_conn(w);
  if (n > 125) return luaL_argerror(L, 2, "ping data is at most 125 bytes");
  if (k == NULL) return srv_ws_closed_result(L);
  if (rfc6455_frame_add(&k->obuf, RFC6455_PING, d, n, NULL) != 0) return luaL_error(L, "out of memory");
  srv_flush(k);
  lua_pushboolean(L, 1);
  return 1;
}

static void srv_on_close_timeout(uv_timer_t *t) { srv_conn_close((srv_conn *)t->data); }

static int srv_ws_closef(lua_State *L) {
  srv_ws *w = srv_check_ws(L);
  lua_Integer code = luaL_optinteger(L, 2, 1000);
  size_t rl = 0;
  const char *reason = luaL_optlstring(L, 3, "", &rl);
  srv_conn *k = srv_ws_open_conn(w);
  if (!(code == 1000 || (code >= 3000 && code <= 4999) || rfc6455_close_code_ok((int)code)))
    return luaL_argerror(L, 2, "invalid close code");
  if (rl > 123) return luaL_argerror(L, 3, "close reason is at most 123 bytes");
  if (k == NULL) {
    lua_pushboolean(L, 0);
    return 1;
  }
  k->close_sent = 1;
  k->close_code = (int)code;
  k->reason_len = rl;
  memcpy(k->close_reason, reason, rl);
  if (rfc6455_close_add(&k->obuf, (int)code, reason, rl, NULL) != 0) return luaL_error(L, "out of memory");
  srv_flush(k);
  uv_timer_start(&k->timer, srv_on_close_timeout, SRV_CLOSE_TIMEOUT_MS, 0);
  lua_pushboolean(L, 1);
  return 1;
}

static int srv_ws_buffered(lua_State *L) {
  srv_ws *w = srv_check_ws(L);
  srv_conn *k = w->conn;
  lua_pushinteger(L, k && !k->closed ? (lua_Integer)(k->obuf.len + (k->writing ? k->wbuf.len : 0)) : 0);
  return 1;
}

static int srv_ws_remote(lua_State *L) {
  lua_pushstring(L, srv_check_ws(L)->remote);
  return 1;
}

static int srv_ws_isopen(lua_State *L) {
  lua_pushboolean(L, srv_ws_open_conn(srv_check_ws(L)) != NULL);
  return 1;
}

static int srv_ws_gc(lua_State *L) {
  srv_ws *w = srv_check_ws(L);
  if (w->conn) {
    w->conn->wsud = NULL;
    w->conn = NULL;
  }
  return 0;
}

void srv_ws_open(lua_State *L) {
  static const luaL_Reg ws_m[] = {
    {"send", srv_ws_send}, {"close", srv_ws_closef}, {"ping", srv_ws_ping},
    {"buffered", srv_ws_buffered}, {"remote", srv_ws_remote}, {"is_open", srv_ws_isopen},
    {"__gc", srv_ws_gc}, {NULL, NULL}};
  core_newmeta(L, SRV_WS_MT, ws_m);
}
