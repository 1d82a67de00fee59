/* fuzz_wsclient.c - libFuzzer target: the WebSocket client (src/ws_uv.c
 * with rfc6455.c as a client) against a server that sends the input.
 *
 * Input: byte 0: bit 0 set: the harness answers the handshake correctly
 * itself and the rest of the input is the frame stream; clear: the rest is
 * the whole answer (status line, headers, frames).  Byte 1: max_message
 * (1 + byte * 32).  Byte 2: the size of the pieces the stream is written
 * in, with loop turns between them (0: 1 byte).  Each input is played
 * twice over loopback TCP to a core.ws_connect client: once in one write,
 * once in pieces; then the harness closes.  Invariants:
 *   - both runs deliver the same messages (text/binary, bytes) and end with
 *     the same close code: how the bytes are split across reads changes
 *     nothing;
 *   - a delivered message is at most max_message bytes; a text message is
 *     valid UTF-8 (checked by Lua's utf8.len, independently of rfc6455.c);
 *   - the connection always ends (on_close is called);
 *   - rfc6455_response on the raw answer (byte 0 clear), with the accept
 *     value of RFC 6455's example key: an accepted answer's header block
 *     lies inside the input and ends with an empty line, and every shorter
 *     prefix is never accepted.
 * The loop is run with UV_RUN_NOWAIT.
 */
#include "fuzz_common.h"
#include "fuzz_check.h"

#include "../../src/rfc6455.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static lua_State *fc_L;
static core_loop *fc_c;
static int fc_lfd;
static int fc_port;

static void fc_spin(int n) {
  int i;
  for (i = 0; i < n; i++) uv_run(&fc_c->uv, UV_RUN_NOWAIT);
}

static int fc_done(void) {
  int d;
  lua_getglobal(fc_L, "fw");
  lua_getfield(fc_L, -1, "done");
  d = lua_toboolean(fc_L, -1);
  lua_pop(fc_L, 2);
  return d;
}

/* Read and drop what the client sent (pongs, close frames). */
static void fc_drain(int fd) {
  char b[4096];
  while (recv(fd, b, sizeof b, MSG_DONTWAIT) > 0) {}
}

static void fc_send(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
      continue;
    }
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      fc_spin(2);
      fc_drain(fd);
      if (fc_done()) return;
      continue;
    }
    return; /* the client closed: fine */
  }
}

/* One run: returns a summary of what the client reported (malloc'd, with
 * its length in *len), or NULL when the harness could not set it up. */
static char *fc_run(int own_answer, size_t max, size_t piece, const uint8_t *s, size_t n, size_t *len) {
  int fd = -1, i;
  char req[8192];
  size_t got = 0;
  char *summary = NULL;
  const char *r;
  lua_getglobal(fc_L, "fw_start");
  lua_pushinteger(fc_L, fc_port);
  lua_pushinteger(fc_L, (lua_Integer)max);
  if (lua_pcall(fc_L, 2, 0, 0) != LUA_OK) fuzz_die(fc_L, "fw_start");
  for (i = 0; i < 20000 && fd < 0; i++) {
    fc_spin(1);
    fd = accept(fc_lfd, NULL, NULL);
    if (fd < 0) usleep(50);
  }
  if (fd < 0) goto out;
  /* the request, up to its empty line */
  for (i = 0; i < 20000; i++) {
    ssize_t k = recv(fd, req + got, sizeof req - 1 - got, MSG_DONTWAIT);
    if (k > 0) got += (size_t)k;
    req[got] = '\0';
    if (strstr(req, "\r\n\r\n") != NULL || got >= sizeof req - 1) break;
    fc_spin(1);
    if (k <= 0) usleep(20);
  }
  if (own_answer) {
    char acc[RFC6455_ACCEPT_LEN + 1], ans[256];
    const char *key = strstr(req, "Sec-WebSocket-Key: ");
    if (key == NULL) goto out;
    key += 19;
    rfc6455_accept(key, RFC6455_KEY_LEN, acc);
    snprintf(ans, sizeof ans,
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Accept: %s\r\n\r\n", acc);
    fc_send(fd, (const uint8_t *)ans, strlen(ans));
  }
  if (piece == 0) {
    fc_send(fd, s, n);
  } else {
    size_t off;
    for (off = 0; off < n && !fc_done(); off += piece) {
      fc_send(fd, s + off, n - off < piece ? n - off : piece);
      fc_spin(3);
      fc_drain(fd);
    }
  }
  shutdown(fd, SHUT_WR);
  for (i = 0; i < 200000 && !fc_done(); i++) {
    fc_spin(1);
    fc_drain(fd);
    if (i > 100) usleep(20);
  }
  FUZZ_CHECK(fc_done()); /* the connection always ends */
  lua_getglobal(fc_L, "fw_check");
  lua_pushinteger(fc_L, (lua_Integer)max);
  if (lua_pcall(fc_L, 1, 1, 0) != LUA_OK) fuzz_die(fc_L, "fw_check");
  r = lua_tolstring(fc_L, -1, len);
  summary = malloc(*len + 1);
  FUZZ_CHECK(summary != NULL);
  memcpy(summary, r, *len);
  lua_pop(fc_L, 1);
out:
  if (fd >= 0) {
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
  }
  fuzz_lua(fc_L, "fw_stop()", 0);
  fc_spin(4);
  return summary;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  struct sockaddr_in sa;
  socklen_t sl = sizeof sa;
  (void)argc;
  (void)argv;
  fc_L = fuzz_state();
  fuzz_lua(fc_L,
           "local core = require 'ari.core'\n"
           "fw = {}\n"
           "function fw_start(port, max)\n"
           "  fw.msgs, fw.done, fw.code = {}, false, nil\n"
           "  fw.conn = core.ws_connect({ url = 'ws://127.0.0.1:' .. port .. '/f', reconnect = false,\n"
           "    ping_interval = 0, max_message = max, connect_timeout = 5000 },\n"
           "    { on_message = function(m, b) fw.msgs[#fw.msgs + 1] = (b and 'B' or 'T') .. m end,\n"
           "      on_close = function(c) fw.done, fw.code = true, c end, on_error = function() end })\n"
           "end\n"
           "function fw_stop() if fw.conn then fw.conn:close(); fw.conn = nil end; collectgarbage() end\n"
           "function fw_check(max)\n"
           "  local t = {}\n"
           "  for i, m in ipairs(fw.msgs) do\n"
           "    assert(#m - 1 <= max, 'message over max_message')\n"
           "    if m:sub(1, 1) == 'T' then assert(utf8.len(m, 2), 'invalid UTF-8 delivered') end\n"
           "    t[i] = string.pack('s4', m)\n"
           "  end\n"
           "  return table.concat(t) .. '|' .. tostring(fw.code)\n"
           "end\n",
           0);
  fc_c = core_get(fc_L);
  fc_lfd = socket(AF_INET, SOCK_STREAM, 0);
  FUZZ_CHECK(fc_lfd >= 0);
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  FUZZ_CHECK(bind(fc_lfd, (struct sockaddr *)&sa, sizeof sa) == 0);
  FUZZ_CHECK(listen(fc_lfd, 16) == 0);
  FUZZ_CHECK(getsockname(fc_lfd, (struct sockaddr *)&sa, &sl) == 0);
  fc_port = ntohs(sa.sin_port);
  fcntl(fc_lfd, F_SETFL, fcntl(fc_lfd, F_GETFL) | O_NONBLOCK);
  return 0;
}

static void fc_response(const uint8_t *p, size_t n) {
  /* the accept value of RFC 6455 1.3's key "dGhlIHNhbXBsZSBub25jZQ==" */
  static const char acc[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
  char err[256];
  int status;
  long r = rfc6455_response((const char *)p, n, acc, NULL, &status, err, sizeof err);
  FUZZ_CHECK(r >= -1);
  if (r < 0) FUZZ_CHECK(err[0] != '\0');
  if (r > 0) {
    size_t i;
    FUZZ_CHECK((size_t)r <= n && r >= 4 && memcmp(p + r - 4, "\r\n\r\n", 4) == 0);
    FUZZ_CHECK(status == 101);
    for (i = (size_t)r / 2; i + 1 < (size_t)r; i += 1 + ((size_t)r - i) / 2)
      FUZZ_CHECK(rfc6455_response((const char *)p, i, acc, NULL, &status, err, sizeof err) <= 0);
    FUZZ_CHECK(rfc6455_response((const char *)p, (size_t)r - 1, acc, NULL, &status, err, sizeof err) <= 0);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int own;
  size_t max, piece, la = 0, lb = 0;
  char *a, *b;
  if (size < 3 || size > 4096) return 0;
  own = data[0] & 1;
  max = 1 + (size_t)data[1] * 32;
  piece = data[2] ? data[2] : 1;
  if (!own) fc_response(data + 3, size - 3);
  a = fc_run(own, max, 0, data + 3, size - 3, &la);
  b = fc_run(own, max, piece, data + 3, size - 3, &lb);
  if (a != NULL && b != NULL) FUZZ_CHECK(la == lb && memcmp(a, b, la) == 0);
  free(a);
  free(b);
  return 0;
}
