/* media_ws.c - the WebSocket side of the media streams (chan_websocket):
 * the client handshake (connection_type server: the core connects to
 * Asterisk's /media/<id>), text control messages (MEDIA_START,
 * MEDIA_XOFF/XON, FLUSH_MEDIA) and taking over a connection accepted by
 * media_listen.c (connection_type client).  Frames are rfc6455.c's; the
 * socket, queues and pacing are media.c's.
 */
#include "media.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ws_text(mstream *s, const unsigned char *p, size_t n) {
  if (s->ntext >= MEDIA_MAX_TEXT) return; /* nobody reads them: the newest go */
  buf_free(&s->text[s->ntext]);
  if (buf_add(&s->text[s->ntext], p, n) != 0) return;
  s->ntext++;
  if (n >= 10 && memcmp(p, "MEDIA_XOFF", 10) == 0) s->xoff = 1;
  else if (n >= 9 && memcmp(p, "MEDIA_XON", 9) == 0) s->xoff = 0;
  else if (n > 0 && p[0] == '{') {
    if (strstr((const char *)s->text[s->ntext - 1].p, "\"MEDIA_XOFF\"")) s->xoff = 1;
    else if (strstr((const char *)s->text[s->ntext - 1].p, "\"MEDIA_XON\"")) s->xoff = 0;
  }
  ms_event(s, "text");
}

/* The WebSocket handshake answer (checked by rfc6455.c, as for every
 * client connection): 1 done, 0 need more, -1 refused. */
int ws_handshake(mstream *s) {
  char err[200];
  int status;
  long r = rfc6455_response((const char *)s->ibuf.p, s->ibuf.len, s->ws_accept, "media", &status, err, sizeof err);
  size_t hl;
  if (r == 0) return 0;
  if (r < 0) {
    snprintf(s->reason, sizeof s->reason, "error: websocket refused: %.120s", err);
    return -1;
  }
  hl = (size_t)r;
  buf_consume(&s->ibuf, hl);
  s->ws_hs = 0;
  s->state = S_OPEN;
  s->next_due = uv_now(&s->c->uv);
  ms_event(s, "open");
  return 1;
}

/* ---------------------------------------------------------------- adoption
 * media_listen.c accepts Asterisk's connections (connection_type client)
 * and hands each to the stream that expects its channel. */

void media_ref(mstream *s) { s->refs++; }
void media_unref(mstream *s) { ms_unref(s); }

int media_adopt(mstream *s, uv_tcp_t *tcp, const unsigned char *start, size_t start_len,
                const unsigned char *rest, size_t n) {
  if (s->transport != T_WS || s->state != S_OPENING || s->tcp_open) return -1;
  s->tcp = tcp;
  tcp->data = s;
  s->tcp_open = 1;
  s->tcp_up = 1;
  s->refs++;
  s->ws_server = 1;
  ms_tcp_sndbuf(tcp);
  rfc6455_init(&s->wsp, RFC6455_SERVER, MEDIA_MAX_WS_MESSAGE);
  s->state = S_OPEN;
  s->next_due = uv_now(&s->c->uv);
  uv_read_stop((uv_stream_t *)tcp);
  uv_read_start((uv_stream_t *)tcp, alloc_cb, tcp_read_cb);
  s->refs++;
  ws_text(s, start, start_len);
  if (s->state == S_OPEN) ms_event(s, "open");
  if (s->state == S_OPEN && n > 0 && buf_add(&s->ibuf, rest, n) == 0) tcp_input(s);
  ms_unref(s);
  return 0;
}

mstream *media_check_stream(lua_State *L, int idx) {
  mstream **p = (mstream **)luaL_checkudata(L, idx, MEDIA_MT);
  if (*p == NULL) luaL_error(L, "media stream already freed");
  return *p;
}

/* ---------------------------------------------------------------- Lua */

static void ws_connect_cb(uv_connect_t *req, int status) {
  mstream *s = (mstream *)req->data;
  if (s->state == S_CLOSED) { ms_unref(s); return; }
  if (status < 0) {
    char why[120];
    snprintf(why, sizeof why, "error: websocket connect: %s", uv_strerror(status));
    ms_close(s, why, 1);
    ms_unref(s);
    return;
  }
  s->tcp_up = 1;
  uv_tcp_nodelay(s->tcp, 1);
  ms_tcp_sndbuf(s->tcp);
  /* the request was queued by l_ws_connect in ibuf's place: send it now */
  tcp_send(s, (unsigned char *)s->ibuf.p, s->ibuf.len, NULL, 0);
  s->ibuf.len = 0;
  uv_read_start((uv_stream_t *)s->tcp, alloc_cb, tcp_read_cb);
  ms_unref(s);
}

int l_ws_connect(lua_State *L) {
  mstream *s = check_ms(L);
  const char *ip = luaL_checkstring(L, 2);
  int port = (int)luaL_checkinteger(L, 3), r;
  const char *path = luaL_checkstring(L, 4), *extra = luaL_optstring(L, 5, "");
  struct sockaddr_storage a;
  unsigned char nonce[16];
  char key[RFC6455_KEY_LEN + 1];
  if (s->transport != T_WS || s->tcp_open || s->state == S_CLOSED) return luaL_error(L, "media: ws_connect: not a fresh websocket stream");
  if (parse_addr(ip, port, &a) != 0) return luaL_error(L, "media: bad address %s:%d", ip, port);
  uv_random(NULL, NULL, nonce, sizeof nonce, 0, NULL);
  rfc6455_key(nonce, key);
  rfc6455_accept(key, strlen(key), s->ws_accept);
  s->ibuf.len = 0;
  if (buf_adds(&s->ibuf, "GET ") || buf_adds(&s->ibuf, path) || buf_adds(&s->ibuf, " HTTP/1.1\r\nHost: ") ||
      buf_adds(&s->ibuf, ip) || buf_adds(&s->ibuf, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: media\r\nSec-WebSocket-Key: ") ||
      buf_adds(&s->ibuf, key) || buf_adds(&s->ibuf, "\r\n") || buf_adds(&s->ibuf, extra) || buf_adds(&s->ibuf, "\r\n"))
    return luaL_error(L, "out of memory");
  if ((s->tcp = malloc(sizeof *s->tcp)) == NULL) return luaL_error(L, "out of memory");
  uv_tcp_init(&s->c->uv, s->tcp);
  uv_unref((uv_handle_t *)s->tcp);
  s->tcp->data = s;
  s->tcp_open = 1;
  s->refs++;
  s->ws_hs = 1;
  s->creq.data = s;
  s->refs++;
  r = uv_tcp_connect(&s->creq, s->tcp, (const struct sockaddr *)&a, ws_connect_cb);
  if (r != 0) {
    s->refs--;
    ms_close(s, "error: websocket connect", 0);
    return luaL_error(L, "media: connect: %s", uv_strerror(r));
  }
  return 0;
}

int l_send_text(lua_State *L) {
  mstream *s = check_ms(L);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  unsigned char h[RFC6455_MAX_HEADER], mask[4], *tmp;
  size_t hl;
  int r;
  if (s->transport != T_WS || s->state != S_OPEN || n > 4096) { lua_pushboolean(L, 0); return 1; }
  tmp = malloc(n + 1);
  if (tmp == NULL) return luaL_error(L, "out of memory");
  memcpy(tmp, p, n);
  uv_random(NULL, NULL, mask, 4, 0, NULL);
  hl = rfc6455_header(h, RFC6455_TEXT, 1, n, s->ws_server ? NULL : mask);
  if (!s->ws_server) rfc6455_mask(tmp, n, mask, 0);
  r = tcp_send(s, h, hl, tmp, n);
  free(tmp);
  lua_pushboolean(L, r == 0);
  return 1;
}

int l_text(lua_State *L) {
  mstream *s = check_ms(L);
  buf first;
  if (s->ntext == 0) return 0;
  first = s->text[0];
  lua_pushlstring(L, (const char *)first.p, first.len);
  buf_free(&first);
  memmove(&s->text[0], &s->text[1], sizeof(buf) * (size_t)(MEDIA_MAX_TEXT - 1));
  memset(&s->text[MEDIA_MAX_TEXT - 1], 0, sizeof(buf));
  s->ntext--;
  return 1;
}

