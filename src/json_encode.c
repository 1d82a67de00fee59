/* json_encode.c - core.json_encode(value) -> text (json.c decodes).
 *
 * Raises on values JSON cannot carry (functions, NaN, cycles, nesting past
 * JSON_MAX_DEPTH, invalid UTF-8).  A table whose metatable has
 * __jsonorder = {"k1", "k2", ...} is written as an object with those keys
 * in that order (nil ones skipped); a table with core.json_array_mt is an
 * array even when empty.  The output is a buf inside a userdata (its __gc
 * frees it), so raising mid-way leaks nothing.
 */
#include "core.h"
#include "json.h"
#include "buf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_BUF_MT "ari.core.json_buf"

/* ---------------------------------------------------------------- encoder */

/* The output: a buf in a userdata (its __gc frees it if an error unwinds). */
static int json_buf_gc(lua_State *L) {
  buf_free((buf *)luaL_checkudata(L, 1, JSON_BUF_MT));
  return 0;
}

static char *enc_reserve(lua_State *L, buf *b, size_t more) {
  if (buf_reserve(b, more) != 0) luaL_error(L, "json_encode: out of memory");
  return b->p + b->len;
}

static void enc_add(lua_State *L, buf *b, const char *s, size_t n) {
  memcpy(enc_reserve(L, b, n), s, n);
  b->len += n;
}

#define ENC_LIT(L, b, s) enc_add(L, b, s, sizeof(s) - 1)

static void enc_string(lua_State *L, buf *b, int idx) {
  static const char hex[] = "0123456789abcdef";
  size_t n, i = 0;
  const unsigned char *s = (const unsigned char *)lua_tolstring(L, idx, &n);
  char *w = enc_reserve(L, b, 1), *lim = w;
  *w++ = '"';
  while (i < n) {
    unsigned c = s[i];
    if (w >= lim) { /* room for up to 4096 more source bytes, each as \u00XX */
      size_t chunk = n - i < 4096 ? n - i : 4096;
      b->len = (size_t)(w - b->p);
      w = enc_reserve(L, b, chunk * 6 + 8);
      lim = w + chunk * 6 + 2; /* while w < lim, 6 bytes always fit */
    }
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
      *w++ = (char)c;
      i++;
      continue;
    }
    if (c >= 0x80) {
      int k = json_utf8_len(s + i, s + n);
      if (k == 0) luaL_error(L, "json_encode: invalid UTF-8 in string (byte %d)", (int)i + 1);
      memcpy(w, s + i, (size_t)k);
      w += k;
      i += (size_t)k;
      continue;
    }
    *w++ = '\\';
    switch (c) {
    case '"': *w++ = '"'; break;
    case '\\': *w++ = '\\'; break;
    case '\b': *w++ = 'b'; break;
    case '\f': *w++ = 'f'; break;
    case '\n': *w++ = 'n'; break;
    case '\r': *w++ = 'r'; break;
    case '\t': *w++ = 't'; break;
    default:
      *w++ = 'u'; *w++ = '0'; *w++ = '0';
      *w++ = hex[c >> 4]; *w++ = hex[c & 15];
    }
    i++;
  }
  b->len = (size_t)(w - b->p);
  enc_reserve(L, b, 1);
  b->p[b->len++] = '"';
}

static void enc_number(lua_State *L, buf *b, int idx) {
  char tmp[64];
  int len;
  if (lua_isinteger(L, idx)) {
    lua_Integer v = lua_tointeger(L, idx);
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    char *e = tmp + sizeof tmp, *q = e;
    do {
      *--q = (char)('0' + u % 10);
      u /= 10;
    } while (u != 0);
    if (v < 0) *--q = '-';
    enc_add(L, b, q, (size_t)(e - q));
    return;
  } else {
    double x = (double)lua_tonumber(L, idx);
    int i, plain = 1;
    if (isnan(x) || isinf(x)) luaL_error(L, "json_encode: cannot encode %s", isnan(x) ? "NaN" : "infinity");
    len = snprintf(tmp, sizeof tmp, "%.14g", x);
    if (strtod(tmp, NULL) != x) len = snprintf(tmp, sizeof tmp, "%.17g", x);
    for (i = 0; i < len; i++) {
      char c = tmp[i];
      if (c == 'e' || c == 'E') plain = 0;
      else if (c != '-' && c != '+' && (c < '0' || c > '9')) {
        tmp[i] = '.'; /* the decimal point, whatever the locale */
        plain = 0;
      }
    }
    if (plain) { /* keep it a float when decoded again */
      tmp[len++] = '.';
      tmp[len++] = '0';
    }
  }
  enc_add(L, b, tmp, (size_t)len);
}

static void enc_value(lua_State *L, buf *b, int idx, int depth, const void **anc, int amt);

/* >>> key order (used by ari.sim to keep Asterisk's field order).
 * The table at idx has its metatable on top of the stack.  When that
 * metatable has a __jsonorder field (a list of key strings), the object is
 * written with exactly those keys, in that order, skipping nil values (keys
 * missing from the list are left out), the metatable is popped and 1 is
 * returned; else the stack is unchanged and 0 is returned. */
static int enc_ordered(lua_State *L, buf *b, int idx, int depth, const void **anc, int amt) {
  lua_Integer k, n;
  int first = 1, keys;
  if (lua_getfield(L, -1, "__jsonorder") != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  keys = lua_gettop(L);
  n = (lua_Integer)lua_rawlen(L, keys);
  ENC_LIT(L, b, "{");
  for (k = 1; k <= n; k++) {
    if (lua_rawgeti(L, keys, k) != LUA_TSTRING)
      luaL_error(L, "json_encode: __jsonorder item %d is not a string", (int)k);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, idx) != LUA_TNIL) {
      if (!first) ENC_LIT(L, b, ",");
      first = 0;
      enc_string(L, b, lua_gettop(L) - 1);
      ENC_LIT(L, b, ":");
      enc_value(L, b, lua_gettop(L), depth + 1, anc, amt);
    }
    lua_pop(L, 2);
  }
  ENC_LIT(L, b, "}");
  lua_pop(L, 2); /* list, metatable */
  return 1;
}
/* <<< key order */

static void enc_table(lua_State *L, buf *b, int idx, int depth, const void **anc, int amt) {
  const void *self = lua_topointer(L, idx);
  int i, is_array = 0;
  lua_Integer n = 0;
  if (depth >= JSON_MAX_DEPTH) luaL_error(L, "json_encode: nesting deeper than %d", JSON_MAX_DEPTH);
  for (i = 0; i < depth; i++)
    if (anc[i] == self) luaL_error(L, "json_encode: cycle (a table contains itself)");
  anc[depth] = self;
  luaL_checkstack(L, 8, "json_encode: nesting");
  if (lua_getmetatable(L, idx)) {
    is_array = lua_rawequal(L, -1, amt);
    /* >>> key order (used by ari.sim): a metatable with __jsonorder */
    if (!is_array && enc_ordered(L, b, idx, depth, anc, amt)) return;
    /* <<< key order */
    lua_pop(L, 1);
  }
  if (is_array) {
    n = (lua_Integer)lua_rawlen(L, idx);
  } else {
    lua_pushnil(L);
    if (!lua_next(L, idx)) {
      ENC_LIT(L, b, "{}");
      return;
    }
    if (lua_type(L, -2) != LUA_TSTRING) {
      lua_Integer count = 0;
      lua_pop(L, 2);
      n = (lua_Integer)lua_rawlen(L, idx);
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n) {
          if (lua_type(L, -1) == LUA_TSTRING)
            luaL_error(L, "json_encode: mixed table (array items and string key '%s')", lua_tostring(L, -1));
          else if (lua_type(L, -1) == LUA_TNUMBER)
            luaL_error(L, "json_encode: non-string key %s (sparse array or mixed table)",
                       lua_tostring(L, -1));
          else
            luaL_error(L, "json_encode: table has a %s key (only string keys or a sequence)",
                       luaL_typename(L, -1));
        }
        count++;
      }
      if (count != n) luaL_error(L, "json_encode: sparse array (%d items, length %d)", (int)count, (int)n);
      is_array = 1;
    } else {
      lua_pop(L, 2);
    }
  }
  if (is_array) {
    lua_Integer k;
    ENC_LIT(L, b, "[");
    for (k = 1; k <= n; k++) {
      if (k > 1) ENC_LIT(L, b, ",");
      lua_rawgeti(L, idx, k);
      enc_value(L, b, lua_gettop(L), depth + 1, anc, amt);
      lua_pop(L, 1);
    }
    ENC_LIT(L, b, "]");
    return;
  }
  ENC_LIT(L, b, "{");
  i = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      if (lua_type(L, -2) == LUA_TNUMBER)
        luaL_error(L, "json_encode: non-string key %s in an object (mixed table)", lua_tostring(L, -2));
      luaL_error(L, "json_encode: object has a %s key (keys must be strings)", luaL_typename(L, -2));
    }
    if (i++ > 0) ENC_LIT(L, b, ",");
    enc_string(L, b, lua_gettop(L) - 1);
    ENC_LIT(L, b, ":");
    enc_value(L, b, lua_gettop(L), depth + 1, anc, amt);
    lua_pop(L, 1);
  }
  ENC_LIT(L, b, "}");
}

static void enc_value(lua_State *L, buf *b, int idx, int depth, const void **anc, int amt) {
  switch (lua_type(L, idx)) {
  case LUA_TNIL: ENC_LIT(L, b, "null"); break;
  case LUA_TBOOLEAN:
    if (lua_toboolean(L, idx)) ENC_LIT(L, b, "true");
    else ENC_LIT(L, b, "false");
    break;
  case LUA_TNUMBER: enc_number(L, b, idx); break;
  case LUA_TSTRING: enc_string(L, b, idx); break;
  case LUA_TTABLE: enc_table(L, b, idx, depth, anc, amt); break;
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == NULL) {
      ENC_LIT(L, b, "null");
      break;
    }
    /* fall through */
  default:
    luaL_error(L, "json_encode: cannot encode a %s", luaL_typename(L, idx));
  }
}

/* core.json_encode(value) */
static int json_encode_l(lua_State *L) {
  const void *anc[JSON_MAX_DEPTH + 1];
  buf *b;
  lua_settop(L, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &json_array_mt_key); /* 2 */
  b = (buf *)lua_newuserdatauv(L, sizeof *b, 0);  /* 3 */
  memset(b, 0, sizeof *b);
  luaL_setmetatable(L, JSON_BUF_MT);
  enc_value(L, b, 1, 0, anc, 2);
  lua_pushlstring(L, b->p != NULL ? b->p : "", b->len);
  buf_free(b);
  return 1;
}

void json_encode_open(lua_State *L) {
  lua_pushcfunction(L, json_encode_l);
  lua_setfield(L, -2, "json_encode");
  if (luaL_newmetatable(L, JSON_BUF_MT)) {
    lua_pushcfunction(L, json_buf_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
}
