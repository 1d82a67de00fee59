/* core.h - the loop context shared by every C file of ari.core.
 *
 * One core_loop per lua_State: a libuv loop, the main Lua thread, and the
 * plumbing that every asynchronous piece uses to call back into Lua.
 * Callbacks always run on the main thread's stack, from a libuv callback,
 * through core_call(), which never lets a Lua error escape into C.
 */
#ifndef ARI_CORE_H
#define ARI_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <lua.h>
#include <lauxlib.h>
#include <uv.h>

enum core_level { CORE_LOG_ERROR = 0, CORE_LOG_WARN, CORE_LOG_INFO, CORE_LOG_DEBUG };

typedef struct core_loop core_loop;
typedef void (*core_shutdown_fn)(core_loop *c, void *ud);

struct core_loop {
  uv_loop_t uv;           /* the one loop */
  lua_State *L;           /* main thread: every callback runs here */
  int closing;            /* set while lua_close tears down: no Lua calls */
  int log_level;          /* enum core_level; messages above it are dropped */
  int logger_ref;         /* Lua function(level, msg) or LUA_NOREF */
  int errh_ref;           /* Lua function(msg_with_traceback) or LUA_NOREF */
  struct core_hook *hooks;/* shutdown hooks, run before the loop closes */
};

/* The loop context of this state (created by luaopen_ari_core). */
core_loop *core_get(lua_State *L);

/* Store the value at idx in the registry; LUA_NOREF for nil. */
int core_ref(lua_State *L, int idx);
void core_unref(core_loop *c, int ref);

/* Push the function stored at ref, then the caller pushes nargs values and
 * calls core_call(c, nargs).  Errors are reported (with traceback) through
 * the error handler; returns 0 on success, -1 on error or when closing.
 * Results are discarded unless nresults > 0 (then left on the stack on
 * success; the caller pops them). */
int core_push_ref(core_loop *c, int ref);
int core_call(core_loop *c, int nargs, int nresults);

/* Log through the Lua logger if one is set, else stderr. */
void core_log(core_loop *c, int level, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 3, 4)))
#endif
  ;

/* Called (in registration order reversed) when the state closes, before the
 * loop is drained and closed.  Each module closes its handles here. */
void core_on_shutdown(core_loop *c, core_shutdown_fn fn, void *ud);

/* Create metatable name with the methods m, its own __index. */
void core_newmeta(lua_State *L, const char *name, const luaL_Reg *m);

/* Millisecond clock of the loop (uv_now) and a monotonic ns clock. */
uint64_t core_now_ms(core_loop *c);

/* Each module adds its functions to the table on top of the stack. */
void json_open(lua_State *L);
void http_open(lua_State *L);
void ws_open(lua_State *L);
void server_open(lua_State *L);
void audio_open(lua_State *L);
void media_open(lua_State *L);
void farmedia_open(lua_State *L);

int luaopen_ari_core(lua_State *L);

#endif
