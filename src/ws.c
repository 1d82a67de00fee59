/* ws.c - core.ws_connect and its Lua class: the Lua face of the WebSocket
 * client whose connections ws_uv.c runs (on libuv, TLS through OpenSSL).
 *
 *   core.ws_connect(opts, handlers) -> conn | nil, err
 *   conn:send(data[, binary]), conn:close(), conn:state(), conn:stats(),
 *   tostring(conn)
 *
 * Here: the options and the url checked and copied into a ws_conn
 * (everything that may raise comes before anything is allocated), the conn
 * userdata, and the calls of its handlers (on_open, on_message, on_close,
 * on_error), whose arguments are built inside a function that core_call
 * runs: running out of memory there is reported like an error of the
 * handler, never unwound through libuv.
 *
 * Lifetime: a conn that is not closed is anchored in the registry
 * (self_ref); at __gc, or when the state closes, it is handed to ws_uv.c,
 * which frees it once its timers have closed.
 */
#include "ws.h"
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WS_CONN_MT "ari.core.ws"
#define WS_CTX_KEY "ari.core.ws.ctx"
#define WS_DEFAULT_MAX_MESSAGE (16u * 1024u * 1024u)

static const char *const ws_state_names[] = {"connecting", "open", "waiting", "closed"};

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

/* ---------------------------------------------------------------- calls into Lua */

static int ws_can_call(ws_conn *k) { return !k->dead && !k->c->closing; }

enum { WS_EV_OPEN, WS_EV_MESSAGE, WS_EV_CLOSE, WS_EV_ERROR };

/* One handler call: ws_event_cf's argument. */
typedef struct ws_event {
  ws_conn *k;
  int ref;          /* the handler */
  int kind;         /* WS_EV_* */
  int code, again;  /* WS_EV_CLOSE */
  const char *text; /* the close reason, the error message */
} ws_event;

/* Run through core_call, so that running out of memory while building the
 * arguments (a decoded JSON message can be large) is reported like an
 * error of the handler instead of unwinding through libuv:
 *   on_open(), on_error(msg), on_close(code, reason, again),
 *   on_message(text, binary), with opts.json on_message(value) or
 *   on_message(nil, err, text) for a text message that does not decode. */
static int ws_event_cf(lua_State *L) {
  ws_event *e = (ws_event *)lua_touserdata(L, 1);
  ws_conn *k = e->k;
  const char *rx = k->msg ? k->msg : "";
  int nargs = 0;
  lua_settop(L, 0);
  core_push_ref(k->c, e->ref);
  switch (e->kind) {
  case WS_EV_ERROR:
    lua_pushstring(L, e->text);
    nargs = 1;
    break;
  case WS_EV_CLOSE:
    lua_pushinteger(L, e->code);
    lua_pushstring(L, e->text);
    lua_pushboolean(L, e->again);
    nargs = 3;
    break;
  case WS_EV_MESSAGE:
    if (k->json && !k->rx_binary) {
      char err[256];
      err[0] = '\0';
      if (json_decode_buf(L, rx, k->msg_len, err, sizeof err) == 0) {
        nargs = 1;
      } else {
        lua_pushnil(L);
        lua_pushstring(L, err[0] ? err : "invalid JSON");
        lua_pushlstring(L, rx, k->msg_len);
        nargs = 3;
      }
    } else {
      lua_pushlstring(L, rx, k->msg_len);
      lua_pushboolean(L, k->rx_binary);
      nargs = 2;
    }
    break;
  default:
    break;
  }
  lua_call(L, nargs, 0);
  return 0;
}

/* Call handler ref with what kind needs (nothing when the conn is dead or
 * the state closing). */
static void ws_emit(ws_conn *k, int ref, int kind, int code, const char *text, int again) {
  ws_event e;
  core_loop *c = k->c;
  if (!ws_can_call(k) || ref == LUA_NOREF) return;
  if (!lua_checkstack(c->L, 4)) {
    core_log(c, CORE_LOG_ERROR, "ws %s: C stack overflow, a handler call is lost", k->host);
    return;
  }
  e.k = k;
  e.ref = ref;
  e.kind = kind;
  e.code = code;
  e.text = text;
  e.again = again;
  lua_pushcfunction(c->L, ws_event_cf);
  lua_pushlightuserdata(c->L, &e);
  core_call(c, 1, 0);
}

void ws_emit_error(ws_conn *k, const char *msg) {
  if (!ws_can_call(k) || k->on_error == LUA_NOREF) {
    core_log(k->c, CORE_LOG_WARN, "ws %s: %s", k->host ? k->host : "?", msg);
    return;
  }
  ws_emit(k, k->on_error, WS_EV_ERROR, 0, msg, 0);
}

void ws_emit_open(ws_conn *k) { ws_emit(k, k->on_open, WS_EV_OPEN, 0, NULL, 0); }

void ws_emit_close(ws_conn *k, int code, const char *reason, int again) {
  ws_emit(k, k->on_close, WS_EV_CLOSE, code, reason, again);
}

void ws_emit_message(ws_conn *k) {
  k->messages++;
  ws_emit(k, k->on_message, WS_EV_MESSAGE, 0, NULL, 0);
}

void ws_unanchor(ws_conn *k) {
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

static ws_ctx *ws_get_ctx(lua_State *L, core_loop *c) {
  ws_ctx *w;
  lua_getfield(L, LUA_REGISTRYINDEX, WS_CTX_KEY);
  w = (ws_ctx *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (w != NULL) return w;
  w = calloc(1, sizeof *w);
  if (w == NULL) return NULL;
  w->c = c;
  if (ws_ctx_init(w) != 0) {
    free(w);
    return NULL;
  }
  lua_pushlightuserdata(L, w);
  lua_setfield(L, LUA_REGISTRYINDEX, WS_CTX_KEY);
  core_on_shutdown(c, ws_shutdown, w);
  return w;
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
  const char *err = ws_enqueue(k, s, n, lua_toboolean(L, 3));
  if (err != NULL) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
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
  k->dead = 1;
  k->self_ref = LUA_NOREF; /* collected, so the anchor is already gone */
  ws_release_refs(k);
  ws_abandon(k);
  return 0;
}

static int ws_tostring(lua_State *L) {
  ws_conn **p = (ws_conn **)luaL_checkudata(L, 1, WS_CONN_MT);
  if (*p == NULL) lua_pushliteral(L, "ws connection (gone)");
  else lua_pushfstring(L, "ws connection %s:%d (%s)", (*p)->host, (*p)->port, ws_state_names[(*p)->state]);
  return 1;
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
