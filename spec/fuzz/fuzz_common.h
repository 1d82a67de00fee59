/* fuzz_common.h - shared set-up of the libFuzzer targets (spec/fuzz/).
 *
 * One Lua state per process, with ari.core linked in (preloaded) and the
 * repository's lua/ directory on package.path (FUZZ_LUADIR, set by the
 * Makefile).  A Lua error in set-up or in an invariant check aborts, so
 * that libFuzzer records the input as a crash.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include "../../src/core.h"
#include "../../src/json.h"

#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_LUADIR
#define FUZZ_LUADIR "lua"
#endif


static inline void fuzz_die(lua_State *L, const char *where) {
  fprintf(stderr, "fuzz: %s: %s\n", where, lua_tostring(L, -1) ? lua_tostring(L, -1) : "(error)");
  abort();
}

/* Run a chunk of Lua; it may return one value, left on the stack. */
static inline void fuzz_lua(lua_State *L, const char *code, int nres) {
  if (luaL_loadstring(L, code) != LUA_OK || lua_pcall(L, 0, nres, 0) != LUA_OK)
    fuzz_die(L, "set-up");
}

static inline lua_State *fuzz_state(void) {
  lua_State *L = luaL_newstate();
  if (L == NULL) abort();
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_ari_core);
  lua_setfield(L, -2, "ari.core");
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  lua_pushstring(L, FUZZ_LUADIR "/?.lua;" FUZZ_LUADIR "/?/init.lua");
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  /* quiet: the targets feed garbage on purpose */
  fuzz_lua(L, "local core = require 'ari.core'\n"
              "core.set_logger(function() end); core.set_error_handler(function() end)\n"
              "local log = require 'ari.log'; log.set_level('error')\n"
              "log.set_output(assert(io.open('/dev/null', 'w')))\n"
              "require('ari.sched').on_error = function() end", 0);
  return L;
}

/* Call the Lua function stored as global `name` with the input as a string;
 * an error raised by it is an invariant violation: abort. */
static inline void fuzz_call_global(lua_State *L, const char *name, const uint8_t *data, size_t size) {
  int top = lua_gettop(L);
  lua_getglobal(L, "debug");
  lua_getfield(L, -1, "traceback");
  lua_remove(L, -2);
  lua_getglobal(L, name);
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, top + 1) != LUA_OK) fuzz_die(L, name);
  lua_settop(L, top);
}

#endif
