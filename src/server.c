/* server.c - HTTP/1.1 + RFC 6455 WebSocket server on raw libuv TCP.
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
 */
#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SRV_SERVER_MT "ari.core.server"
#define SRV_RES_MT "ari.core.server.res"
#define SRV_WS_MT "ari.core.server.ws"
#define SRV_MOD_KEY "ari.core.server.mod"

#define SRV_MAX_HEADERS 256
#define SRV_READ_CHUNK 65536
#define SRV_BUSY_LIMIT (1u << 20)   /* stop reading a busy connection beyond this */
#define SRV_CLOSE_TIMEOUT_MS 2000   /* wait for the peer's close frame */
#define SRV_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ---------------------------------------------------------------- buffers */

typedef struct srv_buf {
  char *p;
  size_t len, cap;
} srv_buf;

static int srv_buf_reserve(srv_buf *b, size_t extra) {
  size_t need = b->len + extra, cap;
  char *p;
  if (need < b->len) return -1;
  if (need <= b->cap) return 0;
  cap = b->cap ? b->cap : 512;
  while (cap < need) {
    if (cap > ((size_t)-1) / 2) { cap = need; break; }
    cap *= 2;
  }
  p = realloc(b->p, cap);
  if (p == NULL) return -1;
  b->p = p;
  b->cap = cap;
  return 0;
}

static int srv_buf_add(srv_buf *b, const void *d, size_t n) {
  if (n == 0) return 0;
  if (srv_buf_reserve(b, n) != 0) return -1;
  memcpy(b->p + b->len, d, n);
  b->len += n;
  return 0;
}

static int srv_buf_str(srv_buf *b, const char *s) { return srv_buf_add(b, s, strlen(s)); }

static void srv_buf_free(srv_buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

/* ---------------------------------------------------------------- SHA-1, base64 */

typedef struct srv_sha1 {
  uint32_t h[5];
  uint64_t n;
  unsigned char blk[64];
  size_t used;
} srv_sha1;

static uint32_t srv_rol(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

static void srv_sha1_block(srv_sha1 *s, const unsigned char *p) {
  uint32_t w[80], a, b, c, d, e, t;
  int i;
  for (i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
           (uint32_t)p[4 * i + 3];
  for (i = 16; i < 80; i++) w[i] = srv_rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  a = s->h[0]; b = s->h[1]; c = s->h[2]; d = s->h[3]; e = s->h[4];
  for (i = 0; i < 80; i++) {
    uint32_t f, k;
    if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
    else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
    else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
    else { f = b ^ c ^ d; k = 0xCA62C1D6; }
    t = srv_rol(a, 5) + f + e + k + w[i];
    e = d; d = c; c = srv_rol(b, 30); b = a; a = t;
  }
  s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d; s->h[4] += e;
}

static void srv_sha1_init(srv_sha1 *s) {
  s->h[0] = 0x67452301; s->h[1] = 0xEFCDAB89; s->h[2] = 0x98BADCFE;
  s->h[3] = 0x10325476; s->h[4] = 0xC3D2E1F0;
  s->n = 0;
  s->used = 0;
}

static void srv_sha1_add(srv_sha1 *s, const void *data, size_t n) {
  const unsigned char *p = (const unsigned char *)data;
  s->n += n;
  while (n > 0) {
    size_t take = 64 - s->used;
    if (take > n) take = n;
    memcpy(s->blk + s->used, p, take);
    s->used += take;
    p += take;
    n -= take;
    if (s->used == 64) {
      srv_sha1_block(s, s->blk);
      s->used = 0;
    }
  }
}

static void srv_sha1_done(srv_sha1 *s, unsigned char out[20]) {
  uint64_t bits = s->n * 8;
  unsigned char pad = 0x80, len[8];
  int i;
  srv_sha1_add(s, &pad, 1);
  pad = 0;
  while (s->used != 56) srv_sha1_add(s, &pad, 1);
  for (i = 0; i < 8; i++) len[i] = (unsigned char)(bits >> (56 - 8 * i));
  srv_sha1_add(s, len, 8);
  for (i = 0; i < 20; i++) out[i] = (unsigned char)(s->h[i / 4] >> (24 - 8 * (i % 4)));
}

/* out must hold 4*ceil(n/3)+1 bytes */
static void srv_base64(const unsigned char *in, size_t n, char *out) {
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i, o = 0;
  for (i = 0; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = tab[v >> 18]; out[o++] = tab[(v >> 12) & 63];
    out[o++] = tab[(v >> 6) & 63]; out[o++] = tab[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
    out[o++] = tab[v >> 18]; out[o++] = tab[(v >> 12) & 63];
    out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
    out[o++] = '=';
  }
  out[o] = '\0';
}

/* ---------------------------------------------------------------- UTF-8 */

static int srv_utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) { i++; continue; }
    if (c >= 0xC2 && c <= 0xDF) {
      if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return 0;
      i += 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      unsigned char c1;
      if (i + 2 >= n) return 0;
      c1 = s[i + 1];
      if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return 0;
      if (c == 0xE0 && c1 < 0xA0) return 0;   /* overlong */
      if (c == 0xED && c1 >= 0xA0) return 0;  /* surrogate */
      i += 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      unsigned char c1;
      if (i + 3 >= n) return 0;
      c1 = s[i + 1];
      if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 || (s[i + 3] & 0xC0) != 0x80) return 0;
      if (c == 0xF0 && c1 < 0x90) return 0;
      if (c == 0xF4 && c1 >= 0x90) return 0;
      i += 4;
    } else {
      return 0;
    }
  }
  return 1;
}

/* ---------------------------------------------------------------- types */

typedef struct srv_mod srv_mod;
typedef struct srv_server srv_server;
typedef struct srv_conn srv_conn;

/* res userdata: one per request */
typedef struct srv_res {
  srv_conn *conn;   /* NULL once answered or the connection is gone */
  int done;
  int websocket;    /* a valid upgrade request */
  int keepalive;
  int head;
  char key[64];     /* Sec-WebSocket-Key */
} srv_res;

/* ws userdata: anchored by the connection while it is open */
typedef struct srv_ws {
  srv_conn *conn;
  char remote[64];
} srv_ws;

struct srv_mod {
  core_loop *c;
  srv_server *servers;
  int hook_ran;
};

struct srv_server {
  uv_tcp_t tcp;
  uv_idle_t idle;
  core_loop *c;
  srv_mod *mod;
  srv_server *next;
  srv_server **box;
  int refs;          /* open handles + live conns + box */
  int listening, quiet, idle_on;
  int on_request_ref, self_ref;
  int port;
  char host[64];
  size_t max_body, max_message, max_header;
  srv_conn *conns;
  lua_Integer accepted, requests, nconn, nws;
};

struct srv_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t wreq;
  srv_server *s;
  srv_conn *prev, *next;
  int handles;       /* open uv handles */
  int closed;        /* teardown started */
  int reading, writing, shut, busy, kick, eof, ws, expect_sent;
  srv_buf rbuf;
  size_t rpos;       /* consumed bytes of rbuf */
  size_t scan;       /* bytes after rpos already searched for the end of the head */
  srv_buf obuf, wbuf;
  srv_res *res;
  srv_ws *wsud;
  int ws_ref, on_msg_ref, on_close_ref;
  int close_sent, close_recv, close_code;
  char close_reason[128];
  size_t reason_len;
  int frag_op;
  srv_buf msg;
  char remote[64];
};

static void srv_process(srv_conn *k);
static void srv_conn_close(srv_conn *k);
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

static void srv_flush(srv_conn *k) {
  uv_buf_t b;
  srv_buf t;
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
  if (k->wbuf.cap > (4u << 20)) srv_buf_free(&k->wbuf);
  if (k->obuf.len > 0) srv_flush(k);
  else if (k->shut) srv_conn_close(k);
}

/* Close once everything queued is written; read nothing more. */
static void srv_shut(srv_conn *k) {
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
  if (k->ws && k->on_close_ref != LUA_NOREF && !s->quiet && !c->closing) {
    core_push_ref(c, k->on_close_ref);
    core_push_ref(c, k->ws_ref);
    lua_pushinteger(c->L, k->close_code);
    lua_pushlstring(c->L, k->close_reason, k->reason_len);
    core_call(c, 3, 0);
  }
  if (k->wsud) k->wsud->conn = NULL;
  core_unref(c, k->on_msg_ref);
  core_unref(c, k->on_close_ref);
  core_unref(c, k->ws_ref);
  srv_buf_free(&k->rbuf);
  srv_buf_free(&k->obuf);
  srv_buf_free(&k->wbuf);
  srv_buf_free(&k->msg);
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

static void srv_conn_close(srv_conn *k) {
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

/* ---------------------------------------------------------------- HTTP responses */

static const char *srv_reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 101: return "Switching Protocols";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 411: return "Length Required";
  case 413: return "Content Too Large";
  case 415: return "Unsupported Media Type";
  case 422: return "Unprocessable Content";
  case 426: return "Upgrade Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  default: break;
  }
  if (status < 200) return "Informational";
  if (status < 300) return "Success";
  if (status < 400) return "Redirection";
  if (status < 500) return "Client Error";
  return "Server Error";
}

/* A response generated by the server itself; the connection then closes. */
static int srv_fail(srv_conn *k, int status, const char *msg) {
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n",
                   status, srv_reason(status), strlen(msg) + 1);
  core_log(k->s->c, CORE_LOG_DEBUG, "server: %s: %d %s", k->remote, status, msg);
  if (srv_buf_add(&k->obuf, head, (size_t)n) != 0 || srv_buf_str(&k->obuf, msg) != 0 ||
      srv_buf_add(&k->obuf, "\n", 1) != 0) {
    srv_conn_close(k);
    return -1;
  }
  srv_shut(k);
  return -1;
}

/* Is c a tchar (RFC 9110 token character)? */
static int srv_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return 1;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return 1;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Does the comma-separated list v (length n) contain token tok (case-insensitive)? */
static int srv_has_token(const char *v, size_t n, const char *tok) {
  size_t tl = strlen(tok), i = 0;
  while (i < n) {
    size_t a, b;
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
    a = i;
    while (i < n && v[i] != ',') i++;
    b = i;
    while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t')) b--;
    if (b - a == tl && strncasecmp(v + a, tok, tl) == 0) return 1;
  }
  return 0;
}

/* ---------------------------------------------------------------- HTTP parsing */

typedef struct srv_hdr {
  const char *name, *value;
  size_t nlen, vlen;
} srv_hdr;

/* Chunked body at p[0..n).  Returns 1 complete (sets *body_len, *used),
 * 0 incomplete, -1 malformed, -2 too large.  With out, appends the data. */
static int srv_chunked(const char *p, size_t n, size_t max, luaL_Buffer *out, size_t *body_len,
                       size_t *used) {
  size_t i = 0, total = 0;
  for (;;) {
    size_t size = 0, digits = 0;
    while (i < n) {
      char ch = p[i];
      int v;
      if (ch >= '0' && ch <= '9') v = ch - '0';
      else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f') v = (ch | 0x20) - 'a' + 10;
      else break;
      if (size > (((size_t)-1) >> 4)) return -2;
      size = size * 16 + (size_t)v;
      digits++;
      i++;
    }
    if (i >= n) return 0;
    if (digits == 0) return -1;
    /* chunk extensions: skip to CRLF */
    while (i < n && p[i] != '\r' && p[i] != '\n') {
      if (p[i] != ';' && p[i] != ' ' && p[i] != '\t' && p[i] != '=' && p[i] != '"' &&
          !srv_tchar((unsigned char)p[i]))
        return -1;
      i++;
    }
    if (i + 2 > n) return 0;
    if (p[i] != '\r' || p[i + 1] != '\n') return -1;
    i += 2;
    if (size == 0) break;
    if (size > max || total + size > max) return -2;
    if (n - i < size + 2) return 0;
    if (p[i + size] != '\r' || p[i + size + 1] != '\n') return -1;
    if (out) luaL_addlstring(out, p + i, size);
    total += size;
    i += size + 2;
  }
  /* trailer fields up to an empty line */
  for (;;) {
    size_t j = i;
    while (j < n && p[j] != '\n') j++;
    if (j >= n) return 0;
    if (j == i || p[j - 1] != '\r') return -1;
    if (j == i + 1) {
      i = j + 1;
      break;
    }
    i = j + 1;
  }
  *body_len = total;
  *used = i;
  return 1;
}

/* Push the request table on L. */
static void srv_push_req(lua_State *L, srv_conn *k, const char *m, size_t ml, const char *t,
                         size_t tl, int minor, srv_hdr *h, int nh) {
  const char *q = memchr(t, '?', tl);
  int i;
  lua_createtable(L, 0, 9);
  lua_pushlstring(L, m, ml);
  lua_setfield(L, -2, "method");
  lua_pushlstring(L, t, q ? (size_t)(q - t) : tl);
  lua_setfield(L, -2, "path");
  if (q) lua_pushlstring(L, q + 1, tl - (size_t)(q - t) - 1);
  else lua_pushliteral(L, "");
  lua_setfield(L, -2, "query");
  lua_pushstring(L, minor ? "1.1" : "1.0");
  lua_setfield(L, -2, "version");
  lua_pushstring(L, k->remote);
  lua_setfield(L, -2, "remote");
  lua_createtable(L, 0, nh);
  for (i = 0; i < nh; i++) {
    luaL_Buffer b;
    size_t j;
    luaL_buffinit(L, &b);
    for (j = 0; j < h[i].nlen; j++) {
      char ch = h[i].name[j];
      luaL_addchar(&b, (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch);
    }
    luaL_pushresult(&b);                 /* headers name */
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) == LUA_TSTRING) { /* repeated: join with ", " */
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, h[i].value, h[i].vlen);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, h[i].value, h[i].vlen);
    }
    lua_rawset(L, -3);
  }
  lua_setfield(L, -2, "headers");
}

/* Try to parse and dispatch one request.  1 dispatched, 0 need more, -1 failed. */
static int srv_http_one(srv_conn *k) {
  srv_server *s = k->s;
  core_loop *c = s->c;
  lua_State *L = c->L;
  srv_hdr hdr[SRV_MAX_HEADERS];
  int nh = 0, minor, chunked = 0, expect = 0, keepalive, conn_close = 0, conn_upgrade = 0;
  int upgrade_ws = 0, ws_version = 0, have_cl = 0, failed;
  const char *b, *line, *end, *m, *t, *v, *key = NULL;
  size_t n, head_len, i, ml, tl, cl = 0, body_len = 0, body_used = 0, keylen = 0;
  srv_res *r;

  /* leading empty lines are ignored (RFC 9112 2.2) */
  while (k->rpos < k->rbuf.len && (k->rbuf.p[k->rpos] == '\r' || k->rbuf.p[k->rpos] == '\n')) {
    k->rpos++;
    k->scan = 0;
  }
  b = k->rbuf.p + k->rpos;
  n = k->rbuf.len - k->rpos;
  if (n == 0) return 0;

  /* end of the head */
  end = NULL;
  i = k->scan > 3 ? k->scan - 3 : 0;
  while (i < n) {
    const char *nl = memchr(b + i, '\n', n - i);
    if (nl == NULL) break;
    i = (size_t)(nl - b);
    if (i >= 3 && b[i - 1] == '\r' && b[i - 2] == '\n' && b[i - 3] == '\r') {
      end = b + i + 1;
      break;
    }
    i++;
  }
  if (end == NULL) {
    k->scan = n;
    if (n > s->max_header) return srv_fail(k, 431, "request header too large");
    return 0;
  }
  head_len = (size_t)(end - b);
  if (head_len > s->max_header) return srv_fail(k, 431, "request header too large");

  /* request line: method SP target SP HTTP/1.x CRLF */
  line = b;
  m = line;
  for (ml = 0; ml < head_len && srv_tchar((unsigned char)m[ml]); ml++) {}
  if (ml == 0 || m[ml] != ' ') return srv_fail(k, 400, "malformed request line");
  t = m + ml + 1;
  for (tl = 0; t + tl < end && (unsigned char)t[tl] > 0x20 && t[tl] != 0x7f; tl++) {}
  if (tl == 0 || t[tl] != ' ') return srv_fail(k, 400, "malformed request target");
  v = t + tl + 1;
  if ((size_t)(end - v) < 10 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[8] != '\r' ||
      v[9] != '\n' || v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9')
    return srv_fail(k, 400, "malformed request line");
  if (v[5] != '1') return srv_fail(k, 505, "only HTTP/1.x is supported");
  minor = v[7] != '0';

  /* header fields */
  line = v + 10;
  while (line < end - 2) {
    const char *eol = memchr(line, '\n', (size_t)(end - line));
    const char *colon, *vs, *ve;
    size_t j;
    if (eol == NULL || eol == line || eol[-1] != '\r') return srv_fail(k, 400, "malformed header line");
    if (line[0] == ' ' || line[0] == '\t') return srv_fail(k, 400, "obsolete line folding");
    colon = memchr(line, ':', (size_t)(eol - line));
    if (colon == NULL || colon == line) return srv_fail(k, 400, "malformed header field");
    for (j = 0; line + j < colon; j++)
      if (!srv_tchar((unsigned char)line[j])) return srv_fail(k, 400, "invalid header name");
    vs = colon + 1;
    ve = eol - 1;
    while (vs < ve && (*vs == ' ' || *vs == '\t')) vs++;
    while (ve > vs && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    for (j = 0; vs + j < ve; j++) {
      unsigned char ch = (unsigned char)vs[j];
      if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return srv_fail(k, 400, "invalid header value");
    }
    if (nh == SRV_MAX_HEADERS) return srv_fail(k, 431, "too many header fields");
    hdr[nh].name = line;
    hdr[nh].nlen = (size_t)(colon - line);
    hdr[nh].value = vs;
    hdr[nh].vlen = (size_t)(ve - vs);
    nh++;
    line = eol + 1;
  }

  for (i = 0; i < (size_t)nh; i++) {
    const char *hn = hdr[i].name, *hv = hdr[i].value;
    size_t hl = hdr[i].nlen, vl = hdr[i].vlen;
#define SRV_IS(lit) (hl == sizeof(lit) - 1 && strncasecmp(hn, lit, hl) == 0)
    if (SRV_IS("content-length")) {
      size_t val = 0, j;
      if (vl == 0) return srv_fail(k, 400, "invalid Content-Length");
      for (j = 0; j < vl; j++) {
        if (hv[j] < '0' || hv[j] > '9') return srv_fail(k, 400, "invalid Content-Length");
        if (val > (((size_t)-1) - 9) / 10) return srv_fail(k, 413, "request body too large");
        val = val * 10 + (size_t)(hv[j] - '0');
      }
      if (have_cl && val != cl) return srv_fail(k, 400, "conflicting Content-Length");
      have_cl = 1;
      cl = val;
    } else if (SRV_IS("transfer-encoding")) {
      if (vl == 7 && strncasecmp(hv, "chunked", 7) == 0 && !chunked) chunked = 1;
      else return srv_fail(k, 501, "unsupported Transfer-Encoding (only chunked)");
    } else if (SRV_IS("connection")) {
      if (srv_has_token(hv, vl, "close")) conn_close = 1;
      if (srv_has_token(hv, vl, "keep-alive")) conn_close = conn_close ? 1 : 2;
      if (srv_has_token(hv, vl, "upgrade")) conn_upgrade = 1;
    } else if (SRV_IS("expect")) {
      if (vl == 12 && strncasecmp(hv, "100-continue", 12) == 0) expect = 1;
    } else if (SRV_IS("upgrade")) {
      if (srv_has_token(hv, vl, "websocket")) upgrade_ws = 1;
    } else if (SRV_IS("sec-websocket-key")) {
      key = hv;
      keylen = vl;
    } else if (SRV_IS("sec-websocket-version")) {
      ws_version = vl == 2 && memcmp(hv, "13", 2) == 0;
    }
#undef SRV_IS
  }
  if (chunked && have_cl) return srv_fail(k, 400, "both Content-Length and Transfer-Encoding");
  if (have_cl && cl > s->max_body) return srv_fail(k, 413, "request body too large");
  keepalive = minor ? conn_close != 1 : conn_close == 2;

  /* body */
  if (chunked) {
    int rc = srv_chunked(b + head_len, n - head_len, s->max_body, NULL, &body_len, &body_used);
    if (rc == -1) return srv_fail(k, 400, "malformed chunked body");
    if (rc == -2) return srv_fail(k, 413, "request body too large");
    if (rc == 0) {
      if (n - head_len > s->max_body + 64 * 1024 + s->max_header)
        return srv_fail(k, 413, "request body too large");
      goto need_more;
    }
  } else if (have_cl) {
    if (n - head_len < cl) goto need_more;
    body_len = body_used = cl;
  }

  /* dispatch */
  k->scan = 0;
  k->expect_sent = 0;
  s->requests++;
  core_push_ref(c, s->on_request_ref);
  srv_push_req(L, k, m, ml, t, tl, minor, hdr, nh);
  if (chunked) {
    luaL_Buffer lb;
    luaL_buffinitsize(L, &lb, body_len);
    srv_chunked(b + head_len, n - head_len, s->max_body, &lb, &body_len, &body_used);
    luaL_pushresult(&lb);
  } else {
    lua_pushlstring(L, b + head_len, body_len);
  }
  lua_setfield(L, -2, "body");
  r = (srv_res *)lua_newuserdatauv(L, sizeof *r, 0);
  memset(r, 0, sizeof *r);
  luaL_setmetatable(L, SRV_RES_MT);
  r->conn = k;
  r->keepalive = keepalive;
  r->head = ml == 4 && memcmp(m, "HEAD", 4) == 0;
  r->websocket = minor && ml == 3 && memcmp(m, "GET", 3) == 0 && upgrade_ws && conn_upgrade &&
                 ws_version && key != NULL && keylen >= 16 && keylen < sizeof r->key;
  if (r->websocket) {
    memcpy(r->key, key, keylen);
    r->key[keylen] = '\0';
  }
  lua_pushboolean(L, r->websocket);
  lua_setfield(L, -3, "websocket");
  k->rpos += head_len + body_used;
  k->busy = 1;
  k->res = r;
  failed = core_call(c, 2, 0) != 0;
  if (failed && !k->closed && k->res == r && !r->done) {
    static const char body[] = "{\"message\":\"request handler failed\"}";
    char head[200];
    int hn = snprintf(head, sizeof head,
                      "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n%s\r\n",
                      sizeof body - 1, keepalive ? "" : "Connection: close\r\n");
    r->done = 1;
    r->conn = NULL;
    k->res = NULL;
    k->busy = 0;
    if (srv_buf_add(&k->obuf, head, (size_t)hn) != 0 || srv_buf_add(&k->obuf, body, sizeof body - 1) != 0) {
      srv_conn_close(k);
      return -1;
    }
    if (!keepalive) srv_shut(k);
    else srv_flush(k);
  }
  return 1;

need_more:
  if (expect && !k->expect_sent && minor) {
    k->expect_sent = 1;
    srv_buf_str(&k->obuf, "HTTP/1.1 100 Continue\r\n\r\n");
    srv_flush(k);
  }
  k->scan = 0;
  return 0;
}

/* ---------------------------------------------------------------- WebSocket frames */

static int srv_ws_frame(srv_conn *k, int op, const void *data, size_t n) {
  unsigned char h[10];
  size_t hl;
  h[0] = (unsigned char)(0x80 | op);
  if (n < 126) {
    h[1] = (unsigned char)n;
    hl = 2;
  } else if (n < 65536) {
    h[1] = 126;
    h[2] = (unsigned char)(n >> 8);
    h[3] = (unsigned char)n;
    hl = 4;
  } else {
    int i;
    h[1] = 127;
    for (i = 0; i < 8; i++) h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    hl = 10;
  }
  if (srv_buf_reserve(&k->obuf, hl + n) != 0) return -1;
  srv_buf_add(&k->obuf, h, hl);
  srv_buf_add(&k->obuf, data, n);
  return 0;
}

static int srv_ws_close_frame(srv_conn *k, int code, const char *reason, size_t rl) {
  unsigned char p[125];
  if (code == 1005) return srv_ws_frame(k, 8, "", 0);
  if (rl > 123) rl = 123;
  p[0] = (unsigned char)(code >> 8);
  p[1] = (unsigned char)code;
  memcpy(p + 2, reason, rl);
  return srv_ws_frame(k, 8, p, rl + 2);
}

/* Fail the connection with a close code. */
static int srv_ws_fail(srv_conn *k, int code, const char *reason) {
  core_log(k->s->c, CORE_LOG_DEBUG, "server: websocket %s: close %d %s", k->remote, code, reason);
  if (!k->close_sent) {
    k->close_sent = 1;
    srv_ws_close_frame(k, code, reason, strlen(reason));
  }
  k->close_code = code;
  k->reason_len = strlen(reason);
  memcpy(k->close_reason, reason, k->reason_len);
  srv_shut(k);
  return -1;
}

static int srv_close_code_ok(int code) {
  if (code >= 3000 && code <= 4999) return 1;
  return code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006;
}

static int srv_ws_deliver(srv_conn *k, const char *p, size_t n, int binary) {
  core_loop *c = k->s->c;
  if (!binary && !srv_utf8_valid((const unsigned char *)p, n))
    return srv_ws_fail(k, 1007, "invalid UTF-8 in text message");
  if (k->on_msg_ref == LUA_NOREF) return 1;
  core_push_ref(c, k->on_msg_ref);
  core_push_ref(c, k->ws_ref);
  lua_pushlstring(c->L, p, n);
  lua_pushboolean(c->L, binary);
  core_call(c, 3, 0);
  return 1;
}

/* Parse one frame.  1 handled, 0 need more, -1 closing. */
static int srv_ws_one(srv_conn *k) {
  srv_server *s = k->s;
  unsigned char *p = (unsigned char *)k->rbuf.p + k->rpos, *pl, mask[4];
  size_t n = k->rbuf.len - k->rpos, hl, plen, i;
  int fin, op;
  if (k->close_recv) {
    k->rpos = k->rbuf.len;
    return 0;
  }
  if (n < 2) return 0;
  fin = p[0] & 0x80;
  op = p[0] & 0x0f;
  if (p[0] & 0x70) return srv_ws_fail(k, 1002, "reserved bits set");
  if (!(p[1] & 0x80)) return srv_ws_fail(k, 1002, "unmasked client frame");
  plen = p[1] & 0x7f;
  hl = 2;
  if (plen == 126) {
    if (n < 4) return 0;
    plen = (size_t)p[2] << 8 | p[3];
    hl = 4;
  } else if (plen == 127) {
    uint64_t v = 0;
    if (n < 10) return 0;
    for (i = 0; i < 8; i++) v = v << 8 | p[2 + i];
    if (v >> 63) return srv_ws_fail(k, 1002, "invalid frame length");
    if (v > (uint64_t)s->max_message) return srv_ws_fail(k, 1009, "message too big");
    plen = (size_t)v;
    hl = 10;
  }
  if (op >= 8) {
    if (!fin || plen > 125) return srv_ws_fail(k, 1002, "invalid control frame");
    if (op > 10) return srv_ws_fail(k, 1002, "unknown opcode");
  } else if (op == 0) {
    if (!k->frag_op) return srv_ws_fail(k, 1002, "unexpected continuation frame");
  } else if (op == 1 || op == 2) {
    if (k->frag_op) return srv_ws_fail(k, 1002, "expected continuation frame");
  } else {
    return srv_ws_fail(k, 1002, "unknown opcode");
  }
  if (op < 8 && plen > s->max_message - (op == 0 ? k->msg.len : 0))
    return srv_ws_fail(k, 1009, "message too big");
  if (n < hl + 4 + plen) return 0;
  memcpy(mask, p + hl, 4);
  pl = p + hl + 4;
  for (i = 0; i < plen; i++) pl[i] ^= mask[i & 3];
  k->rpos += hl + 4 + plen;

  switch (op) {
  case 9: /* ping */
    if (!k->close_sent) {
      srv_ws_frame(k, 10, pl, plen);
      srv_flush(k);
    }
    return 1;
  case 10:
    return 1;
  case 8: {
    int code = 1005;
    if (plen == 1) return srv_ws_fail(k, 1002, "invalid close frame");
    if (plen >= 2) {
      code = pl[0] << 8 | pl[1];
      if (!srv_close_code_ok(code)) return srv_ws_fail(k, 1002, "invalid close code");
      if (!srv_utf8_valid(pl + 2, plen - 2)) return srv_ws_fail(k, 1007, "invalid close reason");
    }
    k->close_recv = 1;
    k->close_code = code;
    k->reason_len = plen >= 2 ? plen - 2 : 0;
    memcpy(k->close_reason, pl + 2, k->reason_len);
    if (!k->close_sent) {
      k->close_sent = 1;
      srv_ws_close_frame(k, code, (const char *)pl + 2, k->reason_len);
    }
    srv_shut(k);
    return -1;
  }
  default:
    break;
  }
  if (op != 0 && fin) return srv_ws_deliver(k, (const char *)pl, plen, op == 2);
  if (op != 0) {
    k->frag_op = op;
    k->msg.len = 0;
  }
  if (srv_buf_add(&k->msg, pl, plen) != 0) return srv_ws_fail(k, 1011, "out of memory");
  if (fin) {
    int rc, bin = k->frag_op == 2;
    k->frag_op = 0;
    rc = srv_ws_deliver(k, k->msg.p, k->msg.len, bin);
    if (!k->closed) {
      k->msg.len = 0;
      if (k->msg.cap > (1u << 20)) srv_buf_free(&k->msg);
    }
    return rc;
  }
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
  if (k->rpos > 0) {
    memmove(k->rbuf.p, k->rbuf.p + k->rpos, k->rbuf.len - k->rpos);
    k->rbuf.len -= k->rpos;
    k->rpos = 0;
  }
  if (k->rbuf.cap - k->rbuf.len < SRV_READ_CHUNK && srv_buf_reserve(&k->rbuf, SRV_READ_CHUNK) != 0) {
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
    if (k->ws && !k->close_sent && !k->writing) {
      static const char reason[] = "server closing";
      uv_buf_t b;
      k->close_sent = 1;
      k->obuf.len = 0;
      if (srv_ws_close_frame(k, 1001, reason, sizeof reason - 1) == 0) {
        b = uv_buf_init(k->obuf.p, (unsigned int)k->obuf.len);
        uv_try_write((uv_stream_t *)&k->tcp, &b, 1);
      }
      k->close_code = 1001;
      k->reason_len = sizeof reason - 1;
      memcpy(k->close_reason, reason, k->reason_len);
    }
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
      if (nl == 10 && strncasecmp(nm, "connection", 10) == 0 && srv_has_token(vv, vl, "close"))
        user_close = 1;
      lua_pop(L, 2);
    }
  }
  close = !r->keepalive || user_close || k->eof;
  nobody = status < 200 || status == 204 || status == 304;
  mark = k->obuf.len;
  snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", (int)status, srv_reason((int)status));
  if (srv_buf_str(&k->obuf, line) != 0) goto oom;
  if (lua_istable(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3) != 0) {
      size_t nl, vl;
      const char *nm = lua_tolstring(L, -2, &nl), *vv;
      lua_pushvalue(L, -1);
      vv = lua_tolstring(L, -1, &vl);
      if (!((nl == 14 && strncasecmp(nm, "content-length", 14) == 0) ||
            (nl == 17 && strncasecmp(nm, "transfer-encoding", 17) == 0))) {
        if (srv_buf_add(&k->obuf, nm, nl) != 0 || srv_buf_add(&k->obuf, ": ", 2) != 0 ||
            srv_buf_add(&k->obuf, vv, vl) != 0 || srv_buf_add(&k->obuf, "\r\n", 2) != 0)
          goto oom;
      }
      lua_pop(L, 2);
    }
  }
  if (!nobody) {
    snprintf(line, sizeof line, "Content-Length: %zu\r\n", blen);
    if (srv_buf_str(&k->obuf, line) != 0) goto oom;
  }
  if (close && !user_close && srv_buf_str(&k->obuf, "Connection: close\r\n") != 0) goto oom;
  if (srv_buf_add(&k->obuf, "\r\n", 2) != 0) goto oom;
  if (!nobody && !r->head && srv_buf_add(&k->obuf, body, blen) != 0) goto oom;
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
  srv_sha1 sh;
  unsigned char dig[20];
  char acc[32];
  srv_ws *w;
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
      if (!srv_tchar((unsigned char)proto[i])) return luaL_argerror(L, 2, "invalid protocol token");
  }
  srv_sha1_init(&sh);
  srv_sha1_add(&sh, r->key, strlen(r->key));
  srv_sha1_add(&sh, SRV_WS_GUID, sizeof SRV_WS_GUID - 1);
  srv_sha1_done(&sh, dig);
  srv_base64(dig, 20, acc);
  if (srv_buf_str(&k->obuf, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Accept: ") != 0 ||
      srv_buf_str(&k->obuf, acc) != 0 || srv_buf_str(&k->obuf, "\r\n") != 0 ||
      (proto && (srv_buf_str(&k->obuf, "Sec-WebSocket-Protocol: ") != 0 ||
                 srv_buf_add(&k->obuf, proto, pl) != 0 || srv_buf_str(&k->obuf, "\r\n") != 0)) ||
      srv_buf_str(&k->obuf, "\r\n") != 0)
    return luaL_error(L, "out of memory");
  w = (srv_ws *)lua_newuserdatauv(L, sizeof *w, 0);
  w->conn = k;
  strcpy(w->remote, k->remote);
  luaL_setmetatable(L, SRV_WS_MT);
  k->wsud = w;
  k->ws = 1;
  k->s->nws++;
  k->ws_ref = core_ref(L, -1);
  if (lua_istable(L, 3)) {
    lua_getfield(L, 3, "on_message");
    if (lua_isfunction(L, -1)) k->on_msg_ref = core_ref(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 3, "on_close");
    if (lua_isfunction(L, -1)) k->on_close_ref = core_ref(L, -1);
    lua_pop(L, 1);
  }
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
  if (srv_buf_add(&k->obuf, d, n) != 0) return luaL_error(L, "out of memory");
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

/* ---------------------------------------------------------------- Lua: ws */

static srv_ws *srv_check_ws(lua_State *L) { return (srv_ws *)luaL_checkudata(L, 1, SRV_WS_MT); }

static srv_conn *srv_ws_open_conn(srv_ws *w) {
  srv_conn *k = w->conn;
  if (k == NULL || k->closed || k->shut || k->close_sent) return NULL;
  return k;
}

static int srv_ws_closed(lua_State *L) {
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
  if (k == NULL) return srv_ws_closed(L);
  if (srv_ws_frame(k, binary ? 2 : 1, d, n) != 0) {
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
  if (k == NULL) return srv_ws_closed(L);
  if (srv_ws_frame(k, 9, d, n) != 0) return luaL_error(L, "out of memory");
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
  if (!(code == 1000 || (code >= 3000 && code <= 4999) || srv_close_code_ok((int)code)))
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
  if (srv_ws_close_frame(k, (int)code, reason, rl) != 0) return luaL_error(L, "out of memory");
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

/* ---------------------------------------------------------------- open */

static void srv_newmeta(lua_State *L, const char *name, const luaL_Reg *m) {
  luaL_newmetatable(L, name);
  luaL_setfuncs(L, m, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

void server_open(lua_State *L) {
  static const luaL_Reg server_m[] = {
    {"port", srv_server_port}, {"close", srv_server_closef}, {"stats", srv_server_stats},
    {"__gc", srv_server_gc}, {NULL, NULL}};
  static const luaL_Reg res_m[] = {
    {"send", srv_res_send}, {"upgrade", srv_res_upgrade}, {"raw", srv_res_raw},
    {"drop", srv_res_drop}, {"__gc", srv_res_gc}, {NULL, NULL}};
  static const luaL_Reg ws_m[] = {
    {"send", srv_ws_send}, {"close", srv_ws_closef}, {"ping", srv_ws_ping},
    {"buffered", srv_ws_buffered}, {"remote", srv_ws_remote}, {"is_open", srv_ws_isopen},
    {"__gc", srv_ws_gc}, {NULL, NULL}};
  srv_newmeta(L, SRV_SERVER_MT, server_m);
  srv_newmeta(L, SRV_RES_MT, res_m);
  srv_newmeta(L, SRV_WS_MT, ws_m);
  lua_pushcfunction(L, srv_listen);
  lua_setfield(L, -2, "server_listen");
}
