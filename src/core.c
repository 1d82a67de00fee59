/* core.c - the loop context, callback plumbing, timers, signals, logging.
 *
 * luaopen_ari_core() creates one core_loop per Lua state (stored in the
 * registry with a __gc that tears everything down) and a module table with
 * the functions of every C file (json_open, http_open, ws_open, server_open).
 */
#include "core.h"

#include <signal.h>
#include <stdarg.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CORE_LOOP_KEY "ari.core.loop"
#define CORE_TIMER_MT "ari.core.timer"
#define CORE_SIGNAL_MT "ari.core.signal"

struct core_hook {
  core_shutdown_fn fn;
  void *ud;
  struct core_hook *next;
};

/* ---------------------------------------------------------------- context */

core_loop *core_get(lua_State *L) {
  core_loop *c;
  lua_getfield(L, LUA_REGISTRYINDEX, CORE_LOOP_KEY);
  c = (core_loop *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (c == NULL) luaL_error(L, "ari.core: loop not initialised");
  return c;
}

int core_ref(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return LUA_NOREF;
  lua_pushvalue(L, idx);
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

void core_unref(core_loop *c, int ref) {
  if (ref != LUA_NOREF && ref != LUA_REFNIL) luaL_unref(c->L, LUA_REGISTRYINDEX, ref);
}

int core_push_ref(core_loop *c, int ref) {
  if (ref == LUA_NOREF || ref == LUA_REFNIL) {
    lua_pushnil(c->L);
    return 0;
  }
  lua_rawgeti(c->L, LUA_REGISTRYINDEX, ref);
  return 1;
}

static int core_traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* The logger's or the error handler's call, run by lua_pcall as a C
 * function, so that pushing its strings happens under protection: running
 * out of memory there falls back to stderr instead of unwinding through
 * libuv.  a, then b when not NULL, are the arguments. */
typedef struct core_msg {
  int ref;
  const char *a, *b;
} core_msg;

static int core_msg_cf(lua_State *L) {
  core_msg *m = (core_msg *)lua_touserdata(L, 1);
  lua_settop(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, m->ref);
  lua_pushstring(L, m->a);
  if (m->b != NULL) lua_pushstring(L, m->b);
  lua_call(L, m->b != NULL ? 2 : 1, 0);
  return 0;
}

/* An error value as text, without converting it (which may allocate). */
static const char *core_errtext(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : "(error object is not a string)";
}

/* Call the function at ref with a [, b], protected: 0, or -1 with the
 * reason in err (the stack is left as it was either way). */
static int core_msg_call(core_loop *c, int ref, const char *a, const char *b, char *err, size_t errlen) {
  lua_State *L = c->L;
  core_msg m;
  if (!lua_checkstack(L, 4)) {
    snprintf(err, errlen, "C stack overflow");
    return -1;
  }
  m.ref = ref;
  m.a = a;
  m.b = b;
  lua_pushcfunction(L, core_msg_cf);
  lua_pushlightuserdata(L, &m);
  if (lua_pcall(L, 1, 0, 0) == LUA_OK) return 0;
  snprintf(err, errlen, "%s", core_errtext(L, -1));
  lua_pop(L, 1);
  return -1;
}

static void core_report(core_loop *c, const char *msg) {
  char err[256];
  if (c->errh_ref != LUA_NOREF) {
    if (core_msg_call(c, c->errh_ref, msg, NULL, err, sizeof err) == 0) return;
    fprintf(stderr, "ari-lua: error handler failed: %s\n", err);
  }
  fprintf(stderr, "ari-lua: %s\n", msg);
}

int core_call(core_loop *c, int nargs, int nresults) {
  lua_State *L = c->L;
  int base = lua_gettop(L) - nargs; /* index of the function */
  if (c->closing) {
    lua_settop(L, base - 1);
    return -1;
  }
  lua_pushcfunction(L, core_traceback);
  lua_insert(L, base);
  if (lua_pcall(L, nargs, nresults, base) != LUA_OK) {
    core_report(c, core_errtext(L, -1));
    lua_settop(L, base - 1);
    return -1;
  }
  lua_remove(L, base);
  return 0;
}

void core_log(core_loop *c, int level, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  static const char *names[] = {"error", "warn", "info", "debug"};
  if (level > c->log_level) return;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (c->logger_ref != LUA_NOREF && !c->closing) {
    char err[256];
    if (core_msg_call(c, c->logger_ref, names[level < 0 ? 0 : level > 3 ? 3 : level], buf, err, sizeof err) == 0)
      return;
  }
  fprintf(stderr, "[%s] %s\n", names[level < 0 ? 0 : level > 3 ? 3 : level], buf);
}

void core_on_shutdown(core_loop *c, core_shutdown_fn fn, void *ud) {
  struct core_hook *h = malloc(sizeof *h);
  if (h == NULL) abort();
  h->fn = fn;
  h->ud = ud;
  h->next = c->hooks;
  c->hooks = h;
}

uint64_t core_now_ms(core_loop *c) { return uv_now(&c->uv); }

static void core_close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static int core_loop_gc(lua_State *L) {
  core_loop *c = (core_loop *)lua_touserdata(L, 1);
  struct core_hook *h;
  c->closing = 1;
  while ((h = c->hooks) != NULL) {
    c->hooks = h->next;
    h->fn(c, h->ud);
    free(h);
  }
  uv_run(&c->uv, UV_RUN_NOWAIT);
  /* Anything a module left open is closed without a callback: its memory
   * is the module's (freed by its hook), so nothing here frees it. */
  uv_walk(&c->uv, core_close_walk, NULL);
  uv_run(&c->uv, UV_RUN_DEFAULT);
  uv_loop_close(&c->uv);
  return 0;
}

/* ---------------------------------------------------------------- loop API */

static int core_run(lua_State *L) {
  core_loop *c = core_get(L);
  int mode = lua_toboolean(L, 1) ? UV_RUN_ONCE : UV_RUN_DEFAULT;
  if (!lua_pushthread(L)) return luaL_error(L, "ari.core.run must be called from the main thread");
  lua_pop(L, 1);
  lua_pushboolean(L, uv_run(&c->uv, mode) != 0);
  return 1;
}

static int core_stop(lua_State *L) {
  uv_stop(&core_get(L)->uv);
  return 0;
}

static int core_now(lua_State *L) {
  core_loop *c = core_get(L);
  uv_update_time(&c->uv);
  lua_pushinteger(L, (lua_Integer)uv_now(&c->uv));
  return 1;
}

static int core_hrtime(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_hrtime());
  return 1;
}

/* core.memory() -> { heap_in_use, heap_free, mmapped } (bytes, from the C
   allocator; glibc's mallinfo2) or nil where the allocator cannot tell.
   heap_free is memory freed but kept by malloc (part of the RSS). */
static int core_memory(lua_State *L) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  struct mallinfo2 mi = mallinfo2();
  if (mi.uordblks == 0 && mi.hblkhd == 0) { /* another allocator (e.g. a sanitizer's) */
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, (lua_Integer)mi.uordblks);
  lua_setfield(L, -2, "heap_in_use");
  lua_pushinteger(L, (lua_Integer)mi.fordblks);
  lua_setfield(L, -2, "heap_free");
  lua_pushinteger(L, (lua_Integer)mi.hblkhd);
  lua_setfield(L, -2, "mmapped");
#else
  lua_pushnil(L);
#endif
  return 1;
}

/* core.trim() -> bool: hand the C allocator's free memory back to the
   system (glibc malloc_trim); false where there is nothing to do it with. */
static int core_trim(lua_State *L) {
#ifdef __GLIBC__
  lua_pushboolean(L, malloc_trim(0));
#else
  lua_pushboolean(L, 0);
#endif
  return 1;
}

static int core_set_logger(lua_State *L) {
  core_loop *c = core_get(L);
  core_unref(c, c->logger_ref);
  c->logger_ref = core_ref(L, 1);
  if (lua_isinteger(L, 2)) c->log_level = (int)lua_tointeger(L, 2);
  return 0;
}

static int core_set_log_level(lua_State *L) {
  core_get(L)->log_level = (int)luaL_checkinteger(L, 1);
  return 0;
}

static int core_set_error_handler(lua_State *L) {
  core_loop *c = core_get(L);
  core_unref(c, c->errh_ref);
  c->errh_ref = core_ref(L, 1);
  return 0;
}

static int core_alive(lua_State *L) {
  lua_pushboolean(L, uv_loop_alive(&core_get(L)->uv));
  return 1;
}

/* ---------------------------------------------------------------- timers
 * core.timer(ms, fn [, repeat_ms]) -> timer.  The callback runs on the loop;
 * a one-shot timer is released after it fires.  While armed the timer is
 * anchored in the registry, so dropping the Lua value does not cancel it.
 * The uv handle lives in malloc'd memory freed by its close callback. */

typedef struct core_timer {
  uv_timer_t h;
  core_loop *c;
  int cb_ref;
  int self_ref; /* anchors the userdata while armed */
  int closed;
  int keep; /* re-armable (timer:again): the callback outlives a one-shot firing */
} core_timer;

static void core_timer_free(uv_handle_t *h) { free(h->data); }

static void core_timer_disarm(core_timer *t) {
  if (t->self_ref != LUA_NOREF) {
    core_unref(t->c, t->self_ref);
    t->self_ref = LUA_NOREF;
  }
}

static void core_timer_cb(uv_timer_t *h) {
  core_timer *t = (core_timer *)h->data;
  core_loop *c = t->c;
  int cb = t->cb_ref;
  if (uv_timer_get_repeat(h) == 0 && t->keep) {
    /* re-armable: only the anchor goes; the callback stays for again() */
    core_timer_disarm(t);
    if (core_push_ref(c, cb)) core_call(c, 0, 0);
    else lua_pop(c->L, 1);
    return;
  }
  if (uv_timer_get_repeat(h) == 0) {
    /* keep the callback alive for this call, release everything after */
    t->cb_ref = LUA_NOREF;
    core_timer_disarm(t);
    if (core_push_ref(c, cb)) core_call(c, 0, 0);
    else lua_pop(c->L, 1);
    core_unref(c, cb);
    return;
  }
  if (core_push_ref(c, cb)) core_call(c, 0, 0);
  else lua_pop(c->L, 1);
}

static core_timer *core_checktimer(lua_State *L) {
  core_timer **p = (core_timer **)luaL_checkudata(L, 1, CORE_TIMER_MT);
  if (*p == NULL) luaL_error(L, "timer is closed");
  return *p;
}

static int core_timer_new(lua_State *L) {
  core_loop *c = core_get(L);
  lua_Integer ms = luaL_checkinteger(L, 1);
  lua_Integer rep = luaL_optinteger(L, 3, 0);
  core_timer **p;
  core_timer *t;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (ms < 0) ms = 0;
  if (rep < 0) rep = 0;
  t = calloc(1, sizeof *t);
  if (t == NULL) return luaL_error(L, "out of memory");
  p = (core_timer **)lua_newuserdatauv(L, sizeof *p, 0);
  *p = t;
  luaL_setmetatable(L, CORE_TIMER_MT);
  t->c = c;
  t->h.data = t;
  uv_timer_init(&c->uv, &t->h);
  t->cb_ref = core_ref(L, 2);
  t->self_ref = core_ref(L, -1);
  uv_timer_start(&t->h, core_timer_cb, (uint64_t)ms, (uint64_t)rep);
  return 1;
}

static void core_timer_close(core_timer *t) {
  if (t->closed) return;
  t->closed = 1;
  core_unref(t->c, t->cb_ref);
  t->cb_ref = LUA_NOREF;
  core_timer_disarm(t);
  uv_close((uv_handle_t *)&t->h, core_timer_free);
}

static int core_timer_stop(lua_State *L) {
  core_timer **p = (core_timer **)luaL_checkudata(L, 1, CORE_TIMER_MT);
  if (*p != NULL) {
    core_timer_close(*p);
    *p = NULL;
  }
  return 0;
}

/* timer:again(ms): (re)arm as a one-shot firing in ms, reusing the handle
 * and the callback (no allocation); the timer stays re-armable after it
 * fires.  timer:pause(): disarm without closing (again() re-arms). */
static int core_timer_again(lua_State *L) {
  core_timer *t = core_checktimer(L);
  lua_Integer ms = luaL_checkinteger(L, 2);
  if (t->cb_ref == LUA_NOREF) return luaL_error(L, "timer has fired (a one-shot without again/pause)");
  if (ms < 0) ms = 0;
  t->keep = 1;
  if (t->self_ref == LUA_NOREF) t->self_ref = core_ref(L, 1);
  uv_timer_start(&t->h, core_timer_cb, (uint64_t)ms, 0);
  return 0;
}

static int core_timer_pause(lua_State *L) {
  core_timer *t = core_checktimer(L);
  t->keep = 1;
  uv_timer_stop(&t->h);
  core_timer_disarm(t);
  return 0;
}

static int core_timer_active(lua_State *L) {
  core_timer **p = (core_timer **)luaL_checkudata(L, 1, CORE_TIMER_MT);
  lua_pushboolean(L, *p != NULL && uv_is_active((uv_handle_t *)&(*p)->h));
  return 1;
}

static int core_timer_unref(lua_State *L) {
  uv_unref((uv_handle_t *)&core_checktimer(L)->h);
  lua_settop(L, 1);
  return 1;
}

static int core_timer_gc(lua_State *L) {
  core_timer **p = (core_timer **)luaL_checkudata(L, 1, CORE_TIMER_MT);
  if (*p != NULL) {
    core_timer *t = *p;
    /* Only reached when unanchored (fired or stopped) or at lua_close. */
    if (!t->closed) {
      if (t->c->closing) {
        t->cb_ref = LUA_NOREF; /* the registry is going away anyway */
        t->self_ref = LUA_NOREF;
      }
      core_timer_close(t);
    }
    *p = NULL;
  }
  return 0;
}

/* ---------------------------------------------------------------- signals
 * core.signal("SIGINT"|"SIGTERM"|"SIGHUP"|..., fn) -> handle.  Signal
 * handles do not keep the loop alive. */

typedef struct core_signal {
  uv_signal_t h;
  core_loop *c;
  int cb_ref;
  int closed;
} core_signal;

static void core_signal_cb(uv_signal_t *h, int signum) {
  core_signal *s = (core_signal *)h->data;
  if (!core_push_ref(s->c, s->cb_ref)) {
    lua_pop(s->c->L, 1);
    return;
  }
  lua_pushinteger(s->c->L, signum);
  core_call(s->c, 1, 0);
}

static int core_signum(const char *name) {
  static const struct { const char *n; int v; } tab[] = {
    {"SIGINT", SIGINT}, {"SIGTERM", SIGTERM}, {"SIGHUP", SIGHUP},
    {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}, {"SIGQUIT", SIGQUIT}};
  size_t i;
  for (i = 0; i < sizeof tab / sizeof tab[0]; i++)
    if (strcmp(tab[i].n, name) == 0) return tab[i].v;
  return -1;
}

static void core_signal_close(core_signal *s) {
  if (s->closed) return;
  s->closed = 1;
  core_unref(s->c, s->cb_ref);
  s->cb_ref = LUA_NOREF;
  uv_close((uv_handle_t *)&s->h, core_timer_free);
}

static int core_signal_new(lua_State *L) {
  core_loop *c = core_get(L);
  int signum = core_signum(luaL_checkstring(L, 1));
  core_signal **p;
  core_signal *s;
  if (signum < 0) return luaL_argerror(L, 1, "unknown signal name");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  s = calloc(1, sizeof *s);
  if (s == NULL) return luaL_error(L, "out of memory");
  p = (core_signal **)lua_newuserdatauv(L, sizeof *p, 0);
  *p = s;
  luaL_setmetatable(L, CORE_SIGNAL_MT);
  s->c = c;
  s->h.data = s;
  uv_signal_init(&c->uv, &s->h);
  s->cb_ref = core_ref(L, 2);
  uv_signal_start(&s->h, core_signal_cb, signum);
  uv_unref((uv_handle_t *)&s->h);
  return 1;
}

static int core_signal_closef(lua_State *L) {
  core_signal **p = (core_signal **)luaL_checkudata(L, 1, CORE_SIGNAL_MT);
  if (*p != NULL) {
    if ((*p)->c->closing) (*p)->cb_ref = LUA_NOREF;
    core_signal_close(*p);
    *p = NULL;
  }
  return 0;
}

/* ---------------------------------------------------------------- open */

void core_newmeta(lua_State *L, const char *name, const luaL_Reg *m) {
  luaL_newmetatable(L, name);
  luaL_setfuncs(L, m, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

/* Every socket of the core is written with write()/writev() through libuv
 * (which cannot pass MSG_NOSIGNAL): a peer that has gone away would raise
 * SIGPIPE, whose default action kills the process (and with it every call).
 * Ignore it, unless the embedding program installed its own handler; the
 * write then fails with EPIPE and the connection is handled as lost. */
static void core_ignore_sigpipe(void) {
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
  }
}

int luaopen_ari_core(lua_State *L) {
  static const luaL_Reg timer_m[] = {
    {"stop", core_timer_stop}, {"close", core_timer_stop}, {"active", core_timer_active},
    {"again", core_timer_again}, {"pause", core_timer_pause},
    {"unref", core_timer_unref}, {"__gc", core_timer_gc}, {NULL, NULL}};
  static const luaL_Reg signal_m[] = {
    {"close", core_signal_closef}, {"__gc", core_signal_closef}, {NULL, NULL}};
  static const luaL_Reg fns[] = {
    {"run", core_run}, {"stop", core_stop}, {"now", core_now}, {"hrtime", core_hrtime},
    {"alive", core_alive}, {"memory", core_memory}, {"trim", core_trim}, {"timer", core_timer_new}, {"signal", core_signal_new},
    {"set_logger", core_set_logger}, {"set_log_level", core_set_log_level},
    {"set_error_handler", core_set_error_handler}, {NULL, NULL}};

  lua_getfield(L, LUA_REGISTRYINDEX, CORE_LOOP_KEY);
  if (lua_isnil(L, -1)) {
    core_loop *c = (core_loop *)lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    if (uv_loop_init(&c->uv) != 0) return luaL_error(L, "ari.core: uv_loop_init failed");
    core_ignore_sigpipe();
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    c->L = lua_tothread(L, -1);
    lua_pop(L, 1);
    c->log_level = CORE_LOG_INFO;
    c->logger_ref = LUA_NOREF;
    c->errh_ref = LUA_NOREF;
    lua_newtable(L);
    lua_pushcfunction(L, core_loop_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, CORE_LOOP_KEY);
  }
  lua_pop(L, 1);
  core_newmeta(L, CORE_TIMER_MT, timer_m);
  core_newmeta(L, CORE_SIGNAL_MT, signal_m);

  luaL_newlib(L, fns);
  lua_pushliteral(L, ARI_VERSION);
  lua_setfield(L, -2, "version");
  json_open(L);
  http_open(L);
  ws_open(L);
  server_open(L);
  audio_open(L);
  media_open(L);
  farmedia_open(L);
  return 1;
}
