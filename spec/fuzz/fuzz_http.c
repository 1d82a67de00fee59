/* fuzz_http.c - libFuzzer target: HTTP handling.
 *
 * Request mode (any input not starting with 'R'): the bytes are written,
 * over a loopback TCP connection, to an ari.core server (src/server.c and
 * server_ws.c, with httpreq.c parsing requests and rfc6455.c frames; both
 * are also fuzzed directly by fuzz_httpreq and fuzz_ws) whose handler is in
 * spec/fuzz/http_check.lua; the target reads whatever comes back until the
 * server closes or nothing moves, then closes its end.
 * Response mode ('R' + bytes): the bytes are the raw response the server
 * writes to a core.http_request (src/http.c, http_curl.c on libcurl); the
 * callback checks what the client reports.
 * The loop is run with UV_RUN_NOWAIT, so nothing here waits on timers.
 */
#include "fuzz_common.h"

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

static lua_State *fh_L;
static core_loop *fh_c;
static int fh_port;

static void fh_spin(int n) {
  int i;
  for (i = 0; i < n; i++) uv_run(&fh_c->uv, UV_RUN_NOWAIT);
}

static int fh_done(void) {
  int d;
  lua_getglobal(fh_L, "fh");
  lua_getfield(fh_L, -1, "done");
  d = lua_toboolean(fh_L, -1);
  lua_pop(fh_L, 2);
  return d;
}

static void fh_request(const uint8_t *data, size_t size) {
  struct sockaddr_in sa;
  size_t off = 0;
  int fd, idle = 0, eof = 0, wr_shut = 0, rounds;
  char buf[8192];

  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)fh_port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  /* Thousands of connections a second: the machine can run short of local
   * ports for a moment (EADDRNOTAVAIL) or the server's accept queue can be
   * full.  That is the harness's environment, not a finding: retry a while
   * (letting the server accept), then skip the input.  The connection ends
   * with RST (SO_LINGER 0) so that no TIME_WAIT port is left behind. */
  for (rounds = 0;; rounds++) {
    struct linger lg = { 1, 0 };
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) abort();
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) break; /* loopback: completes at once */
    close(fd);
    if (rounds >= 200) {
      fprintf(stderr, "fuzz_http: cannot connect to the server (%s): input skipped\n", strerror(errno));
      return;
    }
    fh_spin(1);
    usleep(1000);
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  for (rounds = 0; rounds < 2000 && !eof && idle < 50; rounds++) {
    int moved = 0;
    if (off < size) {
      ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
      if (w > 0) { off += (size_t)w; moved = 1; }
      else if (w < 0 && errno != EAGAIN) off = size;
    } else if (!wr_shut) {
      shutdown(fd, SHUT_WR);
      wr_shut = 1;
      moved = 1;
    }
    fh_spin(1);
    for (;;) {
      ssize_t r = recv(fd, buf, sizeof buf, 0);
      if (r > 0) { moved = 1; continue; }
      if (r == 0 || (r < 0 && errno != EAGAIN)) eof = 1;
      break;
    }
    if (moved) idle = 0;
    else {
      struct pollfd p = { .fd = fd, .events = POLLIN };
      idle++;
      poll(&p, 1, 0);
    }
  }
  close(fd);
  fh_spin(8);
}

static void fh_response(const uint8_t *data, size_t size) {
  int rounds;
  int top = lua_gettop(fh_L);
  lua_getglobal(fh_L, "debug");
  lua_getfield(fh_L, -1, "traceback");
  lua_remove(fh_L, -2);
  lua_getglobal(fh_L, "fh");
  lua_getfield(fh_L, -1, "start");
  lua_remove(fh_L, -2);
  lua_pushlstring(fh_L, (const char *)data, size);
  if (lua_pcall(fh_L, 1, 0, top + 1) != LUA_OK) fuzz_die(fh_L, "start");
  lua_settop(fh_L, top);
  for (rounds = 0; rounds < 20000 && !fh_done(); rounds++) {
    fh_spin(1);
    if (rounds > 100) usleep(100);
  }
  fuzz_lua(fh_L, "fh.finish()", 0);
  fh_spin(8);
}

static int fh_fail(lua_State *L) {
  fprintf(stderr, "fuzz_http: error in a callback: %s\n", luaL_optstring(L, 1, "?"));
  abort();
  return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fh_L = fuzz_state();
  fh_c = core_get(fh_L);
  lua_pushcfunction(fh_L, fh_fail);
  lua_setglobal(fh_L, "fh_fail");
  fuzz_lua(fh_L, "require('ari.core').set_error_handler(fh_fail)", 0);
  fuzz_lua(fh_L, "fh = dofile('" FUZZ_LUADIR "/../spec/fuzz/http_check.lua'); return fh.port", 1);
  fh_port = (int)lua_tointeger(fh_L, -1);
  lua_pop(fh_L, 1);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 65536) return 0;
  if (size > 0 && data[0] == 'R') fh_response(data + 1, size - 1);
  else fh_request(data, size);
  lua_gc(fh_L, LUA_GCSTEP, 0);
  return 0;
}
