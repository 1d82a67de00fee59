/* media_listen.c - the app's side of chan_websocket's connection_type
 * "client": Asterisk connects to a websocket_client.conf URI that points at
 * this listener.  Each connection is upgraded (the server half of the
 * RFC 6455 handshake), then its first text message, MEDIA_START, names the
 * channel; the connection goes to the stream that expects that channel
 * (media.c's media_adopt).  A connection nobody expects is closed.
 *
 *   core.media_listen(host, port) -> listener | nil, err
 *   listener:port(), listener:expect(channel_id, stream),
 *   listener:forget(channel_id), listener:stats(), listener:close()
 */
#include "media.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define LISTEN_MT "ari.core.media_listener"
#define MAX_HEAD 8192
#define MAX_PENDING_MESSAGE 4096
#define MAX_PENDING 64          /* connections not yet handed over; more are refused */



typedef struct mexpect {
  struct mexpect *next;
  mstream *s;
  char id[80];
} mexpect;

typedef struct mlistener mlistener;

typedef struct mpend {
  struct mpend *prev, *next;
  mlistener *l;
  uv_tcp_t *tcp;
  buf ib;
  int upgraded;
  rfc6455_parser p;
} mpend;

struct mlistener {
  core_loop *c;
  uv_tcp_t lis;
  int open, refs, npend;
  mpend *pend;
  mexpect *exp;
  lua_Integer accepted, adopted, refused;
};

static void l_unref(mlistener *l) {
  if (--l->refs == 0) free(l);
}

static void lis_closed(uv_handle_t *h) { l_unref((mlistener *)h->data); }

static void pend_tcp_closed(uv_handle_t *h) { free(h); }

/* Drop a pending connection: its socket closes unless handed over. */
static void pend_free(mpend *p, int close_socket) {
  mlistener *l = p->l;
  if (p->prev) p->prev->next = p->next; else l->pend = p->next;
  if (p->next) p->next->prev = p->prev;
  l->npend--;
  if (close_socket) uv_close((uv_handle_t *)p->tcp, pend_tcp_closed);
  buf_free(&p->ib);
  free(p);
  l_unref(l);
}

typedef struct pwrite { uv_write_t req; } pwrite;
static void pwrite_done(uv_write_t *req, int status) { (void)status; free(req); }

static void pend_send(mpend *p, const char *s, size_t n) {
  pwrite *w = malloc(sizeof *w + n);
  uv_buf_t b;
  if (w == NULL) return;
  memcpy(w + 1, s, n);
  b = uv_buf_init((char *)(w + 1), (unsigned)n);
  if (uv_write(&w->req, (uv_stream_t *)p->tcp, &b, 1, pwrite_done) != 0) free(w);
}

/* The value of header name (lower case, with the colon) in head (lower-cased copy). */
static int header_value(const char *lc, const char *orig, const char *name, char *out, size_t cap) {
  const char *h = strstr(lc, name), *v, *e;
  size_t n;
  if (h == NULL) return -1;
  v = orig + (h - lc) + strlen(name);
  while (*v == ' ' || *v == '\t') v++;
  e = strstr(v, "\r\n");
  if (e == NULL) return -1;
  while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
  n = (size_t)(e - v);
  if (n >= cap) return -1;
  memcpy(out, v, n);
  out[n] = '\0';
  return 0;
}

/* The opening handshake: 1 upgraded, 0 need more, -1 refused. */
static int pend_handshake(mpend *p) {
  char *end, *lc, key[128], proto[128], acc[RFC6455_ACCEPT_LEN + 1];
  size_t hl, i;
  buf out = {0};
  int r = -1;
  if (buf_reserve(&p->ib, 1) != 0) return -1;
  p->ib.p[p->ib.len] = '\0';
  end = strstr(p->ib.p, "\r\n\r\n");
  if (end == NULL) return p->ib.len > MAX_HEAD ? -1 : 0;
  hl = (size_t)(end - p->ib.p) + 4;
  lc = malloc(hl + 1);
  if (lc == NULL) return -1;
  for (i = 0; i < hl; i++) lc[i] = (char)tolower((unsigned char)p->ib.p[i]);
  lc[hl] = '\0';
  if (strncmp(lc, "get ", 4) == 0 && strstr(lc, "\r\nupgrade: websocket") != NULL &&
      header_value(lc, p->ib.p, "\r\nsec-websocket-key:", key, sizeof key) == 0) {
    rfc6455_accept(key, strlen(key), acc);
    if (!buf_adds(&out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: ") && !buf_adds(&out, acc) && !buf_adds(&out, "\r\n") &&
        (header_value(lc, p->ib.p, "\r\nsec-websocket-protocol:", proto, sizeof proto) != 0 ||
         strstr(proto, "media") == NULL || !buf_adds(&out, "Sec-WebSocket-Protocol: media\r\n")) &&
        !buf_adds(&out, "\r\n")) {
      pend_send(p, out.p, out.len);
      r = 1;
    }
  } else {
    static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    pend_send(p, bad, sizeof bad - 1);
  }
  buf_free(&out);
  free(lc);
  if (r == 1) {
    buf_consume(&p->ib, hl);
    p->upgraded = 1;
    rfc6455_init(&p->p, RFC6455_SERVER, MAX_PENDING_MESSAGE);
  }
  return r;
}

/* The channel id in a MEDIA_START message (plain text or JSON). */
static int start_channel(const unsigned char *d, size_t n, char *out, size_t cap) {
  char tmp[MAX_PENDING_MESSAGE + 1], *v, *e;
  size_t k;
  if (n > MAX_PENDING_MESSAGE) return -1;
  memcpy(tmp, d, n);
  tmp[n] = '\0';
  if (strstr(tmp, "MEDIA_START") == NULL) return -1;
  if ((v = strstr(tmp, "\"channel_id\"")) != NULL) {
    v = strchr(v + 12, '"');
    if (v == NULL) return -1;
    v++;
    e = strchr(v, '"');
  } else if ((v = strstr(tmp, "channel_id:")) != NULL) {
    v += 11;
    for (e = v; *e && !isspace((unsigned char)*e); e++) {}
  } else {
    return -1;
  }
  if (e == NULL) return -1;
  k = (size_t)(e - v);
  if (k == 0 || k >= cap) return -1;
  memcpy(out, v, k);
  out[k] = '\0';
  return 0;
}

/* Frames until MEDIA_START: 1 handed over (p is freed), 0 need more, -1 refuse. */
static int pend_frames(mpend *p) {
  size_t off = 0;
  while (off < p->ib.len) {
    rfc6455_frame f;
    int r = rfc6455_parse(&p->p, (unsigned char *)p->ib.p + off, p->ib.len - off, &f);
    char id[80];
    mexpect **pe, *e;
    if (r == 0) break;
    if (r < 0 || f.op == RFC6455_CLOSE) return -1;
    off += f.size;
    if (f.msg_op != RFC6455_TEXT || !f.fin || f.op > RFC6455_BINARY) continue;
    if (start_channel(f.data, f.len, id, sizeof id) != 0) continue;
    for (pe = &p->l->exp; (e = *pe) != NULL; pe = &e->next) {
      if (strcmp(e->id, id) == 0) {
        mlistener *l = p->l;
        uv_tcp_t *tcp = p->tcp;
        mstream *s = e->s;
        int ok;
        *pe = e->next;
        free(e);
        ok = media_adopt(s, tcp, f.data, f.len, (unsigned char *)p->ib.p + off, p->ib.len - off);
        media_unref(s);
        if (ok != 0) return -1;
        l->adopted++;
        pend_free(p, 0);
        return 1;
      }
    }
    return -1; /* nobody expects this channel */
  }
  if (off > 0) buf_consume(&p->ib, off);
  return 0;
}

static void pend_alloc(uv_handle_t *h, size_t size, uv_buf_t *b) {
  static char slab[16384];
  (void)h; (void)size;
  *b = uv_buf_init(slab, sizeof slab);
}

static void pend_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b) {
  mpend *p = (mpend *)st->data;
  int r;
  if (nread < 0) { pend_free(p, 1); return; }
  if (nread == 0) return;
  if (buf_add(&p->ib, b->base, (size_t)nread) != 0) { pend_free(p, 1); return; }
  if (!p->upgraded) {
    r = pend_handshake(p);
    if (r < 0) { p->l->refused++; pend_free(p, 1); return; }
    if (r == 0) return;
  }
  r = pend_frames(p);
  if (r < 0) { p->l->refused++; pend_free(p, 1); }
}

static void lis_accept(uv_stream_t *h, int status) {
  mlistener *l = (mlistener *)h->data;
  mpend *p;
  if (status < 0 || !l->open) return;
  p = calloc(1, sizeof *p);
  if (p == NULL) return;
  p->tcp = malloc(sizeof *p->tcp);
  if (p->tcp == NULL) { free(p); return; }
  uv_tcp_init(&l->c->uv, p->tcp);
  uv_unref((uv_handle_t *)p->tcp);
  if (uv_accept(h, (uv_stream_t *)p->tcp) != 0) {
    uv_close((uv_handle_t *)p->tcp, pend_tcp_closed);
    free(p);
    return;
  }
  p->tcp->data = p;
  p->l = l;
  l->accepted++;
  if (l->npend >= MAX_PENDING) {
    l->refused++;
    uv_close((uv_handle_t *)p->tcp, pend_tcp_closed);
    free(p);
    return;
  }
  l->npend++;
  l->refs++;
  p->next = l->pend;
  if (l->pend) l->pend->prev = p;
  l->pend = p;
  uv_tcp_nodelay(p->tcp, 1);
  uv_read_start((uv_stream_t *)p->tcp, pend_alloc, pend_read);
}

/* ---------------------------------------------------------------- Lua */

static mlistener *check_l(lua_State *L) {
  mlistener **p = (mlistener **)luaL_checkudata(L, 1, LISTEN_MT);
  if (*p == NULL) luaL_error(L, "media listener already freed");
  return *p;
}

static void l_close_all(mlistener *l) {
  if (!l->open) return;
  l->open = 0;
  while (l->pend) pend_free(l->pend, 1);
  while (l->exp) {
    mexpect *e = l->exp;
    l->exp = e->next;
    media_unref(e->s);
    free(e);
  }
  uv_close((uv_handle_t *)&l->lis, lis_closed);
}

static int ll_new(lua_State *L) {
  core_loop *c = core_get(L);
  const char *host = luaL_checkstring(L, 1);
  int port = (int)luaL_optinteger(L, 2, 0), r;
  struct sockaddr_storage a;
  mlistener *l, **ud;
  memset(&a, 0, sizeof a);
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&a) != 0 && uv_ip6_addr(host, port, (struct sockaddr_in6 *)&a) != 0)
    return luaL_error(L, "media listener: bad address '%s'", host);
  l = calloc(1, sizeof *l);
  if (l == NULL) return luaL_error(L, "out of memory");
  ud = (mlistener **)lua_newuserdatauv(L, sizeof *ud, 0);
  *ud = l;
  luaL_setmetatable(L, LISTEN_MT);
  l->c = c;
  l->refs = 2; /* the userdata and the handle */
  uv_tcp_init(&c->uv, &l->lis);
  uv_unref((uv_handle_t *)&l->lis);
  l->lis.data = l;
  l->open = 1;
  r = uv_tcp_bind(&l->lis, (const struct sockaddr *)&a, 0);
  if (r == 0) r = uv_listen((uv_stream_t *)&l->lis, 64, lis_accept);
  if (r != 0) {
    l_close_all(l);
    lua_pushnil(L);
    lua_pushfstring(L, "cannot listen on %s:%d: %s", host, port, uv_strerror(r));
    return 2;
  }
  return 1;
}

static int ll_port(lua_State *L) {
  mlistener *l = check_l(L);
  struct sockaddr_storage a;
  int len = sizeof a;
  if (!l->open || uv_tcp_getsockname(&l->lis, (struct sockaddr *)&a, &len) != 0) return 0;
  lua_pushinteger(L, a.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&a)->sin6_port)
                                             : ntohs(((struct sockaddr_in *)&a)->sin_port));
  return 1;
}

static int ll_expect(lua_State *L) {
  mlistener *l = check_l(L);
  size_t n;
  const char *id = luaL_checklstring(L, 2, &n);
  mstream *s = media_check_stream(L, 3);
  mexpect *e;
  if (!l->open) return luaL_error(L, "media listener is closed");
  if (n == 0 || n >= sizeof e->id) return luaL_argerror(L, 2, "bad channel id");
  e = calloc(1, sizeof *e);
  if (e == NULL) return luaL_error(L, "out of memory");
  memcpy(e->id, id, n);
  e->s = s;
  media_ref(s);
  e->next = l->exp;
  l->exp = e;
  return 0;
}

static int ll_forget(lua_State *L) {
  mlistener *l = check_l(L);
  const char *id = luaL_checkstring(L, 2);
  mexpect **pe, *e;
  for (pe = &l->exp; (e = *pe) != NULL; pe = &e->next) {
    if (strcmp(e->id, id) == 0) {
      *pe = e->next;
      media_unref(e->s);
      free(e);
      break;
    }
  }
  return 0;
}

static int ll_stats(lua_State *L) {
  mlistener *l = check_l(L);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, l->accepted); lua_setfield(L, -2, "accepted");
  lua_pushinteger(L, l->adopted); lua_setfield(L, -2, "adopted");
  lua_pushinteger(L, l->refused); lua_setfield(L, -2, "refused");
  return 1;
}

static int ll_close(lua_State *L) {
  l_close_all(check_l(L));
  return 0;
}

static int ll_gc(lua_State *L) {
  mlistener **p = (mlistener **)luaL_checkudata(L, 1, LISTEN_MT);
  if (*p == NULL) return 0;
  l_close_all(*p);
  l_unref(*p);
  *p = NULL;
  return 0;
}

void media_listen_open(lua_State *L) {
  static const luaL_Reg meth[] = {
    {"port", ll_port}, {"expect", ll_expect}, {"forget", ll_forget}, {"stats", ll_stats},
    {"close", ll_close}, {"__gc", ll_gc}, {NULL, NULL}};
  core_newmeta(L, LISTEN_MT, meth);
  lua_pushcfunction(L, ll_new);
  lua_setfield(L, -2, "media_listen");
}
