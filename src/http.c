/* http.c - core.http_request and its Lua class: the Lua face of the HTTP
 * client whose transfers http_curl.c runs (libcurl multi on libuv).
 *
 *   core.http_request(opts, cb) -> request (:cancel(), :active())
 *   core.http_config{ max_host_connections, max_total_connections }
 *   core.http_stats() -> { in_flight, active, queued, idle_handles, pooling }
 *   core.http_parse_headers(block) -> { lower-case name = value }
 *
 * Here: the options checked and turned into an http_spec and a header list
 * (everything that may raise comes before anything is allocated), the
 * request userdata, and each finished transfer's results or error built
 * into Lua values and passed to its callback, inside a function that
 * core_call runs (out of memory there is reported, never unwound through
 * libuv).
 *
 * Ownership: http_request mallocs the request (http_req) and hands it to
 * http_curl.c's in-flight list, which frees it when it completes or is
 * cancelled (http_finish).  Its Lua userdata holds a pointer to it, cleared
 * when the request ends; while in flight the userdata is anchored in the
 * registry (self_ref).
 */
#include "http.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTTP_REQ_MT "ari.core.http_request"
#define HTTP_CTX_KEY "ari.core.http"
#define HTTP_DEFAULT_TIMEOUT 30000L
#define HTTP_DEFAULT_CONNECT_TIMEOUT 5000L
#define HTTP_DEFAULT_MAX_BODY (64LL * 1024 * 1024)

/* ---------------------------------------------------------------- results */

/* Push the header block as a table { lower-case name = value }; repeated
 * headers are joined with ", ". */
static void http_push_headers(lua_State *L, const char *p, size_t len) {
  const char *end;
  lua_newtable(L);
  if (p == NULL) return;
  end = p + len;
  /* skip the status line */
  while (p < end && *p != '\n') p++;
  while (p < end) {
    const char *line = ++p, *eol, *colon, *v, *ve;
    luaL_Buffer nb;
    if (p >= end) break;
    while (p < end && *p != '\n') p++;
    eol = p;
    colon = memchr(line, ':', (size_t)(eol - line));
    if (colon == NULL || colon == line) continue;
    v = colon + 1;
    ve = eol;
    while (v < ve && (*v == ' ' || *v == '\t')) v++;
    while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    luaL_buffinit(L, &nb);
    for (const char *q = line; q < colon; q++) luaL_addchar(&nb, (char)tolower((unsigned char)*q));
    luaL_pushresult(&nb);      /* name */
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);         /* existing value */
    if (lua_isstring(L, -1)) {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, v, (size_t)(ve - v));
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, v, (size_t)(ve - v));
    }
    lua_rawset(L, -3);
  }
}

static const char *http_kind(CURLcode rc, int too_large) {
  switch (rc) {
  case CURLE_COULDNT_CONNECT:
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
    return "connect";
  case CURLE_OPERATION_TIMEDOUT:
    return "timeout";
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_PARTIAL_FILE:
  case CURLE_WEIRD_SERVER_REPLY:
    return "reset";
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_SSL_SHUTDOWN_FAILED:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_CLIENTCERT:
  case CURLE_USE_SSL_FAILED:
    return "tls";
  case CURLE_FILESIZE_EXCEEDED:
    return "too_large";
  case CURLE_WRITE_ERROR:
    return too_large ? "too_large" : "other";
  default:
    return "other";
  }
}

/* A transfer ended (http_complete_cf's argument). */
typedef struct http_done {
  http_req *r;
  CURLcode rc;
  int cb;        /* the callback's reference, once the request is finished */
  int finished;
} http_done;

/* Run through core_call, so that running out of memory while building the
 * results is reported like an error of the callback rather than unwinding
 * through libuv: pushes cb(status, body, headers) or cb(nil, err), finishes
 * the request, calls cb. */
static int http_complete_cf(lua_State *L) {
  http_done *d = (http_done *)lua_touserdata(L, 1);
  http_req *r = d->r;
  core_loop *c = r->h->c;
  int nargs;
  lua_settop(L, 0);
  core_push_ref(c, r->cb_ref);
  if (d->rc == CURLE_OK) {
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    lua_pushinteger(L, status);
    lua_pushlstring(L, r->body.p ? r->body.p : "", r->body.len);
    if (r->raw_headers) lua_pushlstring(L, r->head.p ? r->head.p : "", r->head.len);
    else http_push_headers(L, r->head.p, r->head.len);
    nargs = 3;
  } else {
    const char *kind = http_kind(d->rc, r->too_large);
    const char *msg = r->errbuf[0] ? r->errbuf : curl_easy_strerror(d->rc);
    lua_pushnil(L);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    if (strcmp(kind, "too_large") == 0 && d->rc == CURLE_WRITE_ERROR)
      lua_pushfstring(L, "response body larger than max_body (%I bytes)", (lua_Integer)r->max_body);
    else
      lua_pushstring(L, msg);
    lua_setfield(L, -2, "message");
    lua_pushinteger(L, (lua_Integer)d->rc);
    lua_setfield(L, -2, "code");
    nargs = 2;
  }
  d->cb = http_finish(r);
  d->finished = 1;
  lua_call(L, nargs, 0);
  return 0;
}

/* A transfer ended: call its callback with the response or the error. */
void http_complete(http_ctx *h, http_req *r, CURLcode rc) {
  core_loop *c = h->c;
  http_done d;
  if (c->closing) return;
  if (!lua_checkstack(c->L, 8)) {
    core_log(c, CORE_LOG_ERROR, "http: C stack overflow, the callback of a request is not called");
    core_unref(c, http_finish(r));
    return;
  }
  if (rc == CURLE_OK && !r->head_done) {
    /* curl accepts a connection closed in the middle of the header block
     * as a complete response: it is not one */
    rc = CURLE_RECV_ERROR;
    snprintf(r->errbuf, sizeof r->errbuf, "connection closed before the response headers were complete");
  }
  d.r = r;
  d.rc = rc;
  d.cb = LUA_NOREF;
  d.finished = 0;
  lua_pushcfunction(c->L, http_complete_cf);
  lua_pushlightuserdata(c->L, &d);
  core_call(c, 1, 0);
  if (!d.finished) d.cb = http_finish(r); /* the results could not be built (reported) */
  core_unref(c, d.cb);
}

/* ---------------------------------------------------------------- Lua API */

static http_ctx *http_ctx_get(lua_State *L) {
  http_ctx *h;
  lua_getfield(L, LUA_REGISTRYINDEX, HTTP_CTX_KEY);
  h = (http_ctx *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (h == NULL || h->closing) luaL_error(L, "ari.core.http: not available");
  return h;
}

static int http_opt_int(lua_State *L, int t, const char *name, long long def, long long *out) {
  int ty = lua_getfield(L, t, name);
  if (ty == LUA_TNIL) {
    *out = def;
  } else if (lua_isinteger(L, -1)) {
    *out = (long long)lua_tointeger(L, -1);
  } else if (ty == LUA_TNUMBER) {
    *out = (long long)lua_tonumber(L, -1);
  } else {
    lua_pop(L, 1);
    return luaL_error(L, "http_request: opts.%s must be a number", name);
  }
  lua_pop(L, 1);
  if (*out < 0) return luaL_error(L, "http_request: opts.%s must not be negative", name);
  return 0;
}

static const char *http_opt_str(lua_State *L, int t, const char *name, size_t *len) {
  const char *s;
  int ty = lua_getfield(L, t, name);
  if (ty == LUA_TNIL) {
    lua_pop(L, 1);
    return NULL;
  }
  if (ty != LUA_TSTRING && ty != LUA_TNUMBER) {
    luaL_error(L, "http_request: opts.%s must be a string", name);
    return NULL;
  }
  /* left on the stack: a number converted here is referenced only there */
  s = lua_tolstring(L, -1, len);
  return s;
}

static int http_is_token(const char *s) {
  if (*s == '\0') return 0;
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch <= 32 || ch >= 127 || strchr("()<>@,;:\\\"/[]?={}", ch)) return 0;
  }
  return 1;
}

static int http_has_crlf(const char *s, size_t n) {
  return memchr(s, '\r', n) != NULL || memchr(s, '\n', n) != NULL || memchr(s, '\0', n) != NULL;
}

/* Build the header list (and collect whether Content-Type was given). */
static struct curl_slist *http_headers(lua_State *L, int t, int *has_ctype, const char **err) {
  struct curl_slist *list = NULL, *nl;
  *has_ctype = 0;
  *err = NULL;
  if (lua_getfield(L, t, "headers") == LUA_TNIL) {
    lua_pop(L, 1);
    return NULL;
  }
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    *err = "opts.headers must be a table";
    return NULL;
  }
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    const char *name, *val;
    size_t vlen;
    if (lua_type(L, -2) != LUA_TSTRING || !(lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)) {
      *err = "opts.headers must map names to string values";
    } else {
      name = lua_tostring(L, -2);
      lua_pushvalue(L, -1); /* tostring on a copy, not on the key iteration value */
      val = lua_tolstring(L, -1, &vlen);
      if (!http_is_token(name)) *err = "invalid header name";
      else if (http_has_crlf(val, vlen)) *err = "header value contains CR, LF or NUL";
      else {
        lua_pushfstring(L, vlen ? "%s: %s" : "%s;", name, val);
        nl = curl_slist_append(list, lua_tostring(L, -1));
        lua_pop(L, 1);
        if (nl == NULL) *err = "out of memory";
        else list = nl;
        if (strcasecmp(name, "Content-Type") == 0) *has_ctype = 1;
      }
      lua_pop(L, 1);
    }
    if (*err) {
      lua_pop(L, 3);
      curl_slist_free_all(list);
      return NULL;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return list;
}

static int http_request(lua_State *L) {
  http_ctx *h = http_ctx_get(L);
  http_spec sp;
  size_t url_len;
  long long timeout, max_body;
  int has_ctype, raw_headers;
  const char *err;
  struct curl_slist *hdrs, *nl;
  http_req *r, **slot;

  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  memset(&sp, 0, sizeof sp);
  sp.url = http_opt_str(L, 1, "url", &url_len);
  if (sp.url == NULL) return luaL_error(L, "http_request: opts.url is required");
  if (http_has_crlf(sp.url, url_len)) return luaL_error(L, "http_request: opts.url contains CR, LF or NUL");
  sp.method = http_opt_str(L, 1, "method", NULL);
  if (sp.method == NULL) sp.method = "GET";
  if (!http_is_token(sp.method)) return luaL_error(L, "http_request: invalid method '%s'", sp.method);
  sp.body = http_opt_str(L, 1, "body", &sp.body_len);
  sp.user = http_opt_str(L, 1, "user", NULL);
  sp.password = http_opt_str(L, 1, "password", NULL);
  sp.cainfo = http_opt_str(L, 1, "cainfo", NULL);
  http_opt_int(L, 1, "timeout", HTTP_DEFAULT_TIMEOUT, &timeout);
  http_opt_int(L, 1, "connect_timeout", HTTP_DEFAULT_CONNECT_TIMEOUT, &sp.ctimeout);
  http_opt_int(L, 1, "max_body", HTTP_DEFAULT_MAX_BODY, &max_body);
  lua_getfield(L, 1, "insecure");
  sp.insecure = lua_toboolean(L, -1);
  lua_getfield(L, 1, "raw_headers");
  raw_headers = lua_toboolean(L, -1);
  lua_pop(L, 2);

  /* the userdata first: nothing is allocated yet if this raises */
  slot = (http_req **)lua_newuserdatauv(L, sizeof *slot, 0);
  *slot = NULL;
  luaL_setmetatable(L, HTTP_REQ_MT);

  hdrs = http_headers(L, 1, &has_ctype, &err);
  if (err) return luaL_error(L, "http_request: %s", err);
  /* no "Expect: 100-continue" round trip for request bodies */
  nl = curl_slist_append(hdrs, "Expect:");
  if (nl) hdrs = nl;
  if (!has_ctype && (sp.body == NULL || sp.body_len == 0)) {
    nl = curl_slist_append(hdrs, "Content-Type:");
    if (nl) hdrs = nl;
  }

  r = calloc(1, sizeof *r);
  if (r == NULL) {
    curl_slist_free_all(hdrs);
    return luaL_error(L, "http_request: out of memory");
  }
  r->h = h;
  r->hdrs = hdrs;
  r->raw_headers = raw_headers;
  r->max_body = max_body;
  r->cb_ref = LUA_NOREF;
  r->self_ref = LUA_NOREF;
  r->timeout = timeout;
  if (timeout > 0) r->deadline = uv_now(&h->c->uv) + (uint64_t)timeout;
  r->host = http_host_get(h, sp.url);
  if (r->host == NULL) {
    curl_slist_free_all(hdrs);
    free(r);
    return luaL_error(L, "http_request: out of memory");
  }
  if (r->host->qhead == NULL && http_can_start(h, r->host)) {
    if (http_start(r, &sp) != CURLE_OK) {
      char why[CURL_ERROR_SIZE];
      snprintf(why, sizeof why, "%s", r->errbuf);
      curl_slist_free_all(hdrs);
      if (r->easy) http_easy_put(h, r->easy);
      free(r);
      return luaL_error(L, "http_request: %s", why);
    }
  } else {
    r->spec = http_spec_copy(&sp);
    if (r->spec == NULL) {
      curl_slist_free_all(hdrs);
      free(r);
      return luaL_error(L, "http_request: out of memory");
    }
    http_enqueue(r);
  }
  *slot = r;
  r->slot = slot;
  r->cb_ref = core_ref(L, 2);
  r->self_ref = core_ref(L, -1);
  http_link(r);
  return 1;
}

/* core.http_parse_headers(block) -> { lower-case name = value }: a header
   block returned with opts.raw_headers, as a table. */
static int http_parse_headers(lua_State *L) {
  size_t len;
  const char *p = luaL_checklstring(L, 1, &len);
  http_push_headers(L, p, len);
  return 1;
}

static int http_req_cancel(lua_State *L) {
  http_req **slot = (http_req **)luaL_checkudata(L, 1, HTTP_REQ_MT);
  http_req *r = *slot;
  if (r != NULL) {
    core_loop *c = r->h->c;
    http_ctx *h = r->h;
    int cb = http_finish(r); /* clears *slot */
    core_unref(c, cb);
    if (h->queued > 0) http_pump(h);
    lua_pushboolean(L, 1);
  } else {
    lua_pushboolean(L, 0);
  }
  return 1;
}

static int http_req_active(lua_State *L) {
  http_req **slot = (http_req **)luaL_checkudata(L, 1, HTTP_REQ_MT);
  lua_pushboolean(L, *slot != NULL);
  return 1;
}

static int http_req_gc(lua_State *L) {
  http_req **slot = (http_req **)luaL_checkudata(L, 1, HTTP_REQ_MT);
  /* only reached while in flight at lua_close: detach, the shutdown hook
   * frees the request */
  if (*slot != NULL) {
    (*slot)->slot = NULL;
    *slot = NULL;
  }
  return 0;
}

static int http_config(lua_State *L) {
  http_ctx *h = http_ctx_get(L);
  long long v;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "max_host_connections");
  if (!lua_isnil(L, -1)) {
    v = (long long)luaL_checkinteger(L, -1);
    if (v < 0) return luaL_error(L, "http_config: max_host_connections must not be negative");
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)v);
    h->max_host = (long)v;
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "max_total_connections");
  if (!lua_isnil(L, -1)) {
    v = (long long)luaL_checkinteger(L, -1);
    if (v < 0) return luaL_error(L, "http_config: max_total_connections must not be negative");
    curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)v);
    h->max_total = (long)v;
  }
  lua_pop(L, 1);
  http_pump(h); /* a raised limit lets queued requests go */
  return 0;
}

static int http_stats(lua_State *L) {
  http_ctx *h = http_ctx_get(L);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, h->in_flight);
  lua_setfield(L, -2, "in_flight");
  lua_pushinteger(L, h->active);
  lua_setfield(L, -2, "active");
  lua_pushinteger(L, h->queued);
  lua_setfield(L, -2, "queued");
  lua_pushinteger(L, h->idle);
  lua_setfield(L, -2, "idle_handles");
  lua_pushboolean(L, http_pool_ok()); /* [hardening] see http_pool_ok */
  lua_setfield(L, -2, "pooling");
  return 1;
}

void http_open(lua_State *L) {
  static const luaL_Reg req_m[] = {
    {"cancel", http_req_cancel}, {"active", http_req_active}, {"__gc", http_req_gc}, {NULL, NULL}};
  static const luaL_Reg fns[] = {
    {"http_request", http_request}, {"http_config", http_config}, {"http_stats", http_stats},
    {"http_parse_headers", http_parse_headers},
    {NULL, NULL}};
  core_loop *c = core_get(L);

  if (luaL_newmetatable(L, HTTP_REQ_MT)) {
    luaL_setfuncs(L, req_m, 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);

  lua_getfield(L, LUA_REGISTRYINDEX, HTTP_CTX_KEY);
  if (lua_isnil(L, -1)) {
    const char *err = NULL;
    http_ctx *h = http_ctx_new(c, &err);
    if (h == NULL) luaL_error(L, "ari.core.http: %s", err);
    lua_pushlightuserdata(L, h);
    lua_setfield(L, LUA_REGISTRYINDEX, HTTP_CTX_KEY);
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, fns, 0);
}
