/* oom_host.c - a test host for spec/oom_spec.lua: runs a Lua script with
 * ari.core preloaded in a state whose allocator can be told to fail.
 *
 *   oom_host script.lua
 *
 * The script gets one global, memory_window(extra, ms, start, done): on
 * the loop's next iteration start() runs, then, for `ms` milliseconds of
 * loop time, every Lua allocation fails once those of the window add up
 * to more than `extra` bytes (frees give nothing back); then done() runs
 * (without the limit).  memory_window_close() ends the window early (done()
 * then runs on the next iteration).  Whatever runs from libuv callbacks in that window (the building
 * of a handler's arguments, the logger, the error handler) must turn the
 * failure into a reported error: an out-of-memory error that unwinds
 * through uv_run ends the script with "oom_host: ..." and exit 1.  The
 * host exits 0 when the script returns.
 */
#include "../../src/core.h"

#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>

static int oom_on_now;      /* inside the window */
static size_t oom_extra;     /* what the window allows, in bytes */
static size_t oom_grown;     /* what it took so far (frees give nothing back) */
static uint64_t oom_ms;
static uv_timer_t oom_on, oom_off;
static int oom_timers;
static int oom_start_ref = LUA_NOREF, oom_done_ref = LUA_NOREF;
static core_loop *oom_c;

/* Call the function at *ref (once) through core_call. */
static void oom_run(int *ref) {
  int r = *ref;
  *ref = LUA_NOREF;
  if (r == LUA_NOREF) return;
  core_push_ref(oom_c, r);
  core_unref(oom_c, r);
  core_call(oom_c, 0, 0);
}

static void *oom_alloc(void *ud, void *p, size_t osize, size_t nsize) {
  void *q;
  (void)ud;
  if (p == NULL) osize = 0;
  if (nsize == 0) {
    free(p);
    return NULL;
  }
  if (oom_on_now && nsize > osize) {
    if (oom_grown + (nsize - osize) > oom_extra) return NULL;
    oom_grown += nsize - osize;
  }
  q = realloc(p, nsize);
  return q;
}

static void oom_off_cb(uv_timer_t *t) {
  (void)t;
  oom_on_now = 0;
  oom_run(&oom_done_ref);
}

static void oom_on_cb(uv_timer_t *t) {
  (void)t;
  oom_run(&oom_start_ref);
  oom_grown = 0;
  oom_on_now = 1;
  uv_timer_start(&oom_off, oom_off_cb, oom_ms, 0);
}

static int oom_window(lua_State *L) {
  core_loop *c = core_get(L);
  oom_extra = (size_t)luaL_checkinteger(L, 1);
  oom_ms = (uint64_t)luaL_checkinteger(L, 2);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  luaL_checktype(L, 4, LUA_TFUNCTION);
  if (oom_start_ref != LUA_NOREF || oom_done_ref != LUA_NOREF) return luaL_error(L, "a window is already open");
  oom_c = c;
  oom_start_ref = core_ref(L, 3);
  oom_done_ref = core_ref(L, 4);
  if (!oom_timers) {
    uv_timer_init(&c->uv, &oom_on);
    uv_timer_init(&c->uv, &oom_off);
    oom_timers = 1;
  }
  uv_timer_start(&oom_on, oom_on_cb, 0, 0);
  return 0;
}

static int oom_window_close(lua_State *L) {
  (void)L;
  if (oom_on_now) {
    oom_on_now = 0;
    uv_timer_start(&oom_off, oom_off_cb, 0, 0);
  }
  return 0;
}

int main(int argc, char **argv) {
  lua_State *L;
  if (argc != 2) {
    fprintf(stderr, "usage: oom_host script.lua\n");
    return 2;
  }
  L = lua_newstate(oom_alloc, NULL);
  if (L == NULL) return 2;
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_ari_core);
  lua_setfield(L, -2, "ari.core");
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  lua_pushstring(L, "./lua/?.lua;./lua/?/init.lua");
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  lua_register(L, "memory_window", oom_window);
  lua_register(L, "memory_window_close", oom_window_close);
  if (luaL_dofile(L, argv[1]) != LUA_OK) {
    fprintf(stderr, "oom_host: %s\n", lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(error)");
    lua_close(L);
    return 1;
  }
  lua_close(L);
  return 0;
}
