/* fuzz_event.c - libFuzzer target: event routing from a raw WebSocket
 * message.  The input is decoded as ws.c does (json_decode_buf with the
 * ARI schema) and, when it decodes, handed to client:dispatch with an
 * ari.app and handlers registered (spec/fuzz/event_check.lua); the loop
 * then runs the timers that are due.  A Lua error escaping dispatch or a
 * handler is reported by the error handler, which aborts here.
 */
#include "fuzz_common.h"

#include <stdint.h>

static lua_State *fe_L;

static int fe_fail(lua_State *L) {
  fprintf(stderr, "fuzz_event: unhandled error: %s\n", luaL_optstring(L, 1, "?"));
  abort();
  return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fe_L = fuzz_state();
  fuzz_lua(fe_L, "return dofile('" FUZZ_LUADIR "/../spec/fuzz/event_check.lua')", 1);
  lua_setglobal(fe_L, "route");
  /* errors inside handlers and coroutines must not happen: the handlers in
   * event_check.lua only raise Hangup, which the app's runner absorbs */
  lua_pushcfunction(fe_L, fe_fail);
  lua_setglobal(fe_L, "fe_fail");
  fuzz_lua(fe_L, "require('ari.sched').on_error = fe_fail; require('ari.core').set_error_handler(fe_fail)", 0);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256];
  int top = lua_gettop(fe_L);
  lua_getglobal(fe_L, "debug");
  lua_getfield(fe_L, -1, "traceback");
  lua_remove(fe_L, -2);
  lua_getglobal(fe_L, "route");
  if (json_decode_buf(fe_L, (const char *)data, size, err, sizeof err) != 0) {
    lua_settop(fe_L, top);
    return 0;
  }
  if (lua_pcall(fe_L, 1, 0, top + 1) != LUA_OK) fuzz_die(fe_L, "route");
  lua_settop(fe_L, top);
  fuzz_lua(fe_L, "require('ari.core').run(true)", 0);
  lua_gc(fe_L, LUA_GCSTEP, 0);
  return 0;
}
