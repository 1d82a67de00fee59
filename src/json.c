/* json.c - JSON <-> Lua for ari.core, with schema-aware (typed) decoding.
 *
 *   core.json_decode(text [, type]) -> value | nil, "message at byte N", N
 *   core.json_encode(value) -> text (raises on values JSON cannot carry);
 *       a table whose metatable has __jsonorder = {"k1", "k2", ...} is
 *       written as an object with those keys in that order (nil ones skipped)
 *   core.json_schema(models | nil)   registers models for typed decoding
 *   core.json_null                   light userdata sentinel (NULL, as cjson.null)
 *   core.json_array_mt               metatable marking a table as an array
 *
 * Decoding is a single pass from the text straight into Lua values.  The
 * members of a container are collected on the Lua stack and the table is
 * created at its closing bracket with the exact size (no rehash); past
 * JSON_CHUNK members the table is created and filled directly.  Strings
 * without escapes are pushed straight from the input; escaped ones are
 * decoded into a local buffer or a scratch userdata (GC-owned, so a Lua
 * memory error never leaks).  Errors are returned, never raised, with the
 * 1-based byte offset of the problem; the decoder never reads outside
 * [s, s+n).
 *
 * Typing.  A schema maps model names to a metatable and field types.  Each
 * value is decoded in a context (json_type): TOP (root and elements of root
 * arrays: an object with a "type" key naming a registered model becomes that
 * model), PLAIN (no typing: "object" fields, unknown fields, everything below
 * an untyped object), MODEL (an object in a model-typed field; a "type" key
 * naming a registered model switches to that model), LIST (elements typed),
 * INT/DOUBLE (numbers converted).  When "type" is not the first key (Asterisk
 * sends e.g. {"variable":..,"type":"ChannelVarset"}) the members decoded
 * before it are typed afterwards (json_apply).
 *
 * The schema lives in a userdata (JSON_SCHEMA_MT, __gc frees its malloc'd
 * tables) anchored in the registry; its user value is the list of metatables
 * indexed by model number.  The encoder is json_encode.c.
 */
#include "core.h"
#include "json.h"

#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_CHUNK 4096        /* members collected on the stack at most */
#define JSON_SCHEMA_MT "ari.core.json_schema"

static const char json_key_schema = 's';   /* registry keys (addresses) */
const char json_array_mt_key = 'a';

/* ---------------------------------------------------------------- schema */

enum { JK_TOP, JK_PLAIN, JK_INT, JK_DOUBLE, JK_MODEL, JK_LIST };

typedef struct json_type {
  unsigned char kind;  /* JK_* */
  unsigned char elem;  /* JK_LIST: kind of the elements */
  int model;           /* JK_MODEL / elements of JK_LIST: model number */
} json_type;

typedef struct json_field {
  char *name;
  size_t len;
  json_type t;
  int key;        /* index of the name's Lua string in the metatable list */
} json_field;

typedef struct json_model {
  char *name;
  size_t len;
  json_field *fields;
  int nfields;
  int *slots;     /* open addressing: field index or -1 */
  unsigned mask;
} json_model;

typedef struct json_schema {
  json_model *models;
  int nmodels;
  int *slots;     /* model index or -1 */
  unsigned mask;
  int type_key;   /* index of "type" in the metatable list */
} json_schema;

static const json_type json_plain = {JK_PLAIN, 0, -1};
static const json_type json_top = {JK_TOP, 0, -1};

static unsigned json_hash(const char *s, size_t len) {
  unsigned h = 2166136261u;
  size_t i;
  for (i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h;
}

static int json_find_model(const json_schema *sc, const char *s, size_t len) {
  unsigned i;
  int m;
  if (sc->slots == NULL) return -1;
  for (i = json_hash(s, len) & sc->mask; (m = sc->slots[i]) >= 0; i = (i + 1) & sc->mask)
    if (sc->models[m].len == len && memcmp(sc->models[m].name, s, len) == 0) return m;
  return -1;
}

/* h: json_hash(s, len), computed by the caller */
static const json_field *json_field_hashed(const json_schema *sc, int model, const char *s, size_t len,
                                           unsigned h) {
  const json_model *m = &sc->models[model];
  unsigned i;
  int f;
  if (m->slots == NULL) return NULL;
  for (i = h & m->mask; (f = m->slots[i]) >= 0; i = (i + 1) & m->mask)
    if (m->fields[f].len == len && memcmp(m->fields[f].name, s, len) == 0) return &m->fields[f];
  return NULL;
}

static json_type json_find_field(const json_schema *sc, int model, const char *s, size_t len) {
  const json_field *f = json_field_hashed(sc, model, s, len, json_hash(s, len));
  return f != NULL ? f->t : json_plain;
}

/* A type string of a schema field: int/long, double, List[T], a model
 * name; anything else (string, Date, boolean, object, unknown models) is
 * plain. */
static json_type json_parse_type(const json_schema *sc, const char *s, size_t len) {
  json_type t = json_plain;
  int m;
  if ((len == 3 && memcmp(s, "int", 3) == 0) || (len == 4 && memcmp(s, "long", 4) == 0)) {
    t.kind = JK_INT;
  } else if ((len == 6 && memcmp(s, "double", 6) == 0) || (len == 5 && memcmp(s, "float", 5) == 0)) {
    t.kind = JK_DOUBLE;
  } else if (len > 6 && memcmp(s, "List[", 5) == 0 && s[len - 1] == ']') {
    json_type e = json_parse_type(sc, s + 5, len - 6);
    t.kind = JK_LIST;
    t.elem = e.kind == JK_LIST ? JK_PLAIN : e.kind;
    t.model = e.kind == JK_MODEL ? e.model : -1;
  } else if (sc != NULL && (m = json_find_model(sc, s, len)) >= 0) {
    t.kind = JK_MODEL;
    t.model = m;
  }
  return t;
}

static void json_schema_free(json_schema *sc) {
  int i, j;
  if (sc->models != NULL) {
    for (i = 0; i < sc->nmodels; i++) {
      json_model *m = &sc->models[i];
      for (j = 0; j < m->nfields; j++) free(m->fields[j].name);
      free(m->fields);
      free(m->slots);
      free(m->name);
    }
    free(sc->models);
  }
  free(sc->slots);
  memset(sc, 0, sizeof *sc);
}

static int json_schema_gc(lua_State *L) {
  json_schema_free((json_schema *)luaL_checkudata(L, 1, JSON_SCHEMA_MT));
  return 0;
}

static int *json_slots(lua_State *L, int count, unsigned *mask) {
  unsigned cap = 8;
  int *slots;
  while (cap < (unsigned)count * 2u) cap <<= 1;
  slots = malloc(cap * sizeof *slots);
  if (slots == NULL) luaL_error(L, "json_schema: out of memory");
  memset(slots, 0xff, cap * sizeof *slots); /* all -1 */
  *mask = cap - 1;
  return slots;
}

static char *json_strdup(lua_State *L, const char *s, size_t len) {
  char *p = malloc(len + 1);
  if (p == NULL) luaL_error(L, "json_schema: out of memory");
  memcpy(p, s, len);
  p[len] = '\0';
  return p;
}

/* core.json_schema(models | nil) */
static int json_schema_set(lua_State *L) {
  json_schema *sc;
  int count = 0, i, nkeys;
  if (lua_isnoneornil(L, 1)) {
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &json_key_schema);
    return 0;
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    if (lua_type(L, -2) != LUA_TSTRING) return luaL_error(L, "json_schema: model names must be strings");
    if (!lua_istable(L, -1))
      return luaL_error(L, "json_schema: model '%s' must be a table", lua_tostring(L, -2));
    if (count >= 1000000) return luaL_error(L, "json_schema: too many models");
    count++;
    lua_pop(L, 1);
  }
  sc = (json_schema *)lua_newuserdatauv(L, sizeof *sc, 1); /* 2 */
  memset(sc, 0, sizeof *sc);
  luaL_setmetatable(L, JSON_SCHEMA_MT);
  lua_createtable(L, count, 0); /* 3: metatables by model number + 1 */
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, 2, 1);
  sc->models = calloc(count > 0 ? (size_t)count : 1, sizeof *sc->models);
  if (sc->models == NULL) return luaL_error(L, "json_schema: out of memory");
  sc->slots = json_slots(L, count, &sc->mask);
  /* pass 1: names and metatables */
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    size_t len;
    const char *name = lua_tolstring(L, -2, &len);
    unsigned h;
    json_model *m = &sc->models[sc->nmodels];
    m->name = json_strdup(L, name, len);
    m->len = len;
    sc->nmodels++;
    for (h = json_hash(name, len) & sc->mask; sc->slots[h] >= 0; h = (h + 1) & sc->mask) {}
    sc->slots[h] = sc->nmodels - 1;
    lua_getfield(L, -1, "mt");
    if (!lua_istable(L, -1) && !lua_isnil(L, -1))
      return luaL_error(L, "json_schema: model '%s': mt must be a table", name);
    lua_rawseti(L, 3, sc->nmodels);
    lua_pop(L, 1);
  }
  /* pass 2: fields (model references resolve now that all names exist);
     their names' strings go into the metatable list after the metatables */
  nkeys = sc->nmodels;
  lua_pushliteral(L, "type");
  sc->type_key = ++nkeys;
  lua_rawseti(L, 3, sc->type_key);
  for (i = 0; i < sc->nmodels; i++) {
    json_model *m = &sc->models[i];
    int nf = 0;
    lua_pushlstring(L, m->name, m->len);
    lua_rawget(L, 1);
    lua_getfield(L, -1, "fields"); /* model, fields */
    if (lua_isnil(L, -1)) {
      lua_pop(L, 2);
      continue;
    }
    if (!lua_istable(L, -1)) return luaL_error(L, "json_schema: model '%s': fields must be a table", m->name);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "json_schema: model '%s': fields must map names to type strings", m->name);
      nf++;
      lua_pop(L, 1);
    }
    m->fields = calloc(nf > 0 ? (size_t)nf : 1, sizeof *m->fields);
    if (m->fields == NULL) return luaL_error(L, "json_schema: out of memory");
    m->slots = json_slots(L, nf, &m->mask);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      size_t klen, tlen;
      const char *k = lua_tolstring(L, -2, &klen);
      const char *t = lua_tolstring(L, -1, &tlen);
      json_field *f = &m->fields[m->nfields];
      unsigned h;
      f->name = json_strdup(L, k, klen);
      f->len = klen;
      f->t = json_parse_type(sc, t, tlen);
      /* [perf] the name's Lua string, kept referenced: the decoder pushes
         it with lua_rawgeti instead of hashing and interning the key */
      f->key = ++nkeys;
      lua_pushvalue(L, -2);
      lua_rawseti(L, 3, f->key);
      m->nfields++;
      for (h = json_hash(k, klen) & m->mask; m->slots[h] >= 0; h = (h + 1) & m->mask) {}
      m->slots[h] = m->nfields - 1;
      lua_pop(L, 1);
    }
    lua_pop(L, 2);
  }
  lua_pushvalue(L, 2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &json_key_schema);
  return 0;
}

/* ---------------------------------------------------------------- typing after the fact
 * Used when a "type" key comes after other members: the values already
 * decoded (plain) get the types of the model now known. */

static void json_apply(lua_State *L, const json_schema *sc, int mts, int idx, int model);

/* Converts the value at absolute index idx in place for type t. */
static void json_coerce(lua_State *L, const json_schema *sc, int mts, int idx, json_type t) {
  switch (t.kind) {
  case JK_INT:
    if (lua_type(L, idx) == LUA_TNUMBER && !lua_isinteger(L, idx)) {
      lua_Number x = lua_tonumber(L, idx);
      if (x == floor(x) && x >= -9223372036854775808.0 && x < 9223372036854775808.0) {
        lua_pushinteger(L, (lua_Integer)x);
        lua_replace(L, idx);
      }
    }
    break;
  case JK_DOUBLE:
    if (lua_isinteger(L, idx)) {
      lua_pushnumber(L, (lua_Number)lua_tointeger(L, idx));
      lua_replace(L, idx);
    }
    break;
  case JK_MODEL:
    if (lua_type(L, idx) == LUA_TTABLE) json_apply(L, sc, mts, idx, t.model);
    break;
  case JK_LIST:
    if (lua_type(L, idx) == LUA_TTABLE) {
      lua_Integer i, n = (lua_Integer)lua_rawlen(L, idx);
      json_type e = {t.elem, 0, t.model};
      if (e.kind == JK_PLAIN) break;
      for (i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        json_coerce(L, sc, mts, lua_gettop(L), e);
        lua_rawseti(L, idx, i);
      }
    }
    break;
  default:
    break;
  }
}

static int json_model_of(lua_State *L, const json_schema *sc, int idx, int model) {
  lua_pushliteral(L, "type");
  if (lua_rawget(L, idx) == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    int m = json_find_model(sc, s, len);
    if (m >= 0) model = m;
  }
  lua_pop(L, 1);
  return model;
}

static void json_apply(lua_State *L, const json_schema *sc, int mts, int idx, int model) {
  luaL_checkstack(L, 8, "json: nesting");
  model = json_model_of(L, sc, idx, model);
  lua_rawgeti(L, mts, model + 1);
  lua_setmetatable(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) == LUA_TSTRING) {
      size_t len;
      const char *k = lua_tolstring(L, -2, &len);
      json_type t = json_find_field(sc, model, k, len);
      if (t.kind != JK_PLAIN) {
        json_coerce(L, sc, mts, lua_gettop(L), t);
        lua_pushvalue(L, -2);
        lua_pushvalue(L, -2);
        lua_rawset(L, idx);
      }
    }
    lua_pop(L, 1);
  }
}

/* ---------------------------------------------------------------- decoder */

typedef struct json_dec {
  lua_State *L;
  const unsigned char *s, *p, *end;
  const json_schema *sc;   /* NULL: no typing at all */
  int mts;                 /* stack index of the metatable list */
  int scratch;             /* stack index of the scratch userdata slot */
  unsigned char *sbuf;
  size_t scap;
  int depth;
  const char *emsg;
  const unsigned char *epos;
  int ech;                 /* offending character for "unexpected" or -1 */
} json_dec;

static int dec_fail(json_dec *d, const char *msg, const unsigned char *at) {
  d->emsg = msg;
  d->epos = at;
  d->ech = -1;
  return -1;
}

#define DEC_WS(d) \
  while ((d)->p < (d)->end && (*(d)->p == ' ' || *(d)->p == '\n' || *(d)->p == '\r' || *(d)->p == '\t')) \
    (d)->p++

static unsigned char *dec_scratch(json_dec *d, size_t need) {
  if (d->scap < need) {
    size_t cap = d->scap * 2;
    if (cap < need) cap = need;
    if (cap < 1024) cap = 1024;
    d->sbuf = (unsigned char *)lua_newuserdatauv(d->L, cap, 0);
    d->scap = cap;
    lua_replace(d->L, d->scratch);
  }
  return d->sbuf;
}

static inline int dec_utf8(const unsigned char *p, const unsigned char *end) {
  unsigned c = p[0];
  size_t left = (size_t)(end - p);
  if (c < 0xC2) return 0;
  if (c < 0xE0) return left >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
  if (c < 0xF0) {
    unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    return left >= 3 && p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 ? 3 : 0;
  }
  if (c < 0xF5) {
    unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    return left >= 4 && p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80
               ? 4 : 0;
  }
  return 0;
}

int json_utf8_len(const unsigned char *p, const unsigned char *end) { return dec_utf8(p, end); }

/* Four hex digits at p (bounded by end) or -1. */
static long dec_hex4(const unsigned char *p, const unsigned char *end) {
  long v = 0;
  int i;
  if (end - p < 4) return -1;
  for (i = 0; i < 4; i++) {
    unsigned c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (long)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (long)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (long)(c - 'A' + 10);
    else return -1;
  }
  return v;
}

/* Pushes the string at d->p (an opening quote); ks and kl get the decoded
 * bytes (valid until the next string is decoded). */
static int dec_string(json_dec *d, const char **ks, size_t *kl) {
  const unsigned char *open = d->p, *p = d->p + 1, *end = d->end, *start = p, *q;
  unsigned char lbuf[256], *buf, *w;
  for (;;) {
    unsigned c;
    if (p >= end) return dec_fail(d, "unterminated string", open);
    c = *p;
    if (c == '"') {
      lua_pushlstring(d->L, (const char *)start, (size_t)(p - start));
      *ks = (const char *)start;
      *kl = (size_t)(p - start);
      d->p = p + 1;
      return 0;
    }
    if (c == '\\') break;
    if (c < 0x20) return dec_fail(d, "control character in string", p);
    if (c < 0x80) p++;
    else {
      int n = dec_utf8(p, end);
      if (n == 0) return dec_fail(d, "invalid UTF-8 in string", p);
      p += n;
    }
  }
  /* escapes: find the closing quote to size the buffer (decoded <= source) */
  for (q = p; q < end && *q != '"'; q++)
    if (*q == '\\') q++;
  if (q >= end) return dec_fail(d, "unterminated string", open);
  buf = (size_t)(q - start) <= sizeof lbuf ? lbuf : dec_scratch(d, (size_t)(q - start));
  memcpy(buf, start, (size_t)(p - start));
  w = buf + (p - start);
  while (p < q) {
    unsigned c = *p;
    if (c == '\\') {
      const unsigned char *esc = p;
      p++;
      switch (*p) {
      case '"': *w++ = '"'; p++; break;
      case '\\': *w++ = '\\'; p++; break;
      case '/': *w++ = '/'; p++; break;
      case 'b': *w++ = '\b'; p++; break;
      case 'f': *w++ = '\f'; p++; break;
      case 'n': *w++ = '\n'; p++; break;
      case 'r': *w++ = '\r'; p++; break;
      case 't': *w++ = '\t'; p++; break;
      case 'u': {
        long u = dec_hex4(p + 1, end);
        if (u < 0) return dec_fail(d, "invalid \\u escape", esc);
        p += 5;
        if (u >= 0xDC00 && u <= 0xDFFF) return dec_fail(d, "lone surrogate", esc);
        if (u >= 0xD800 && u <= 0xDBFF) {
          long lo;
          if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || (lo = dec_hex4(p + 2, end)) < 0xDC00 ||
              lo > 0xDFFF)
            return dec_fail(d, "lone surrogate", esc);
          u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
          p += 6;
        }
        if (u < 0x80) *w++ = (unsigned char)u;
        else if (u < 0x800) {
          *w++ = (unsigned char)(0xC0 | (u >> 6));
          *w++ = (unsigned char)(0x80 | (u & 0x3F));
        } else if (u < 0x10000) {
          *w++ = (unsigned char)(0xE0 | (u >> 12));
          *w++ = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
          *w++ = (unsigned char)(0x80 | (u & 0x3F));
        } else {
          *w++ = (unsigned char)(0xF0 | (u >> 18));
          *w++ = (unsigned char)(0x80 | ((u >> 12) & 0x3F));
          *w++ = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
          *w++ = (unsigned char)(0x80 | (u & 0x3F));
        }
        break;
      }
      default:
        return dec_fail(d, "invalid escape", esc);
      }
    } else if (c < 0x20) {
      return dec_fail(d, "control character in string", p);
    } else if (c < 0x80) {
      *w++ = (unsigned char)c;
      p++;
    } else {
      int n = dec_utf8(p, end);
      if (n == 0 || p + n > q) return dec_fail(d, "invalid UTF-8 in string", p);
      memcpy(w, p, (size_t)n);
      w += n;
      p += n;
    }
  }
  lua_pushlstring(d->L, (const char *)buf, (size_t)(w - buf));
  *ks = (const char *)buf;
  *kl = (size_t)(w - buf);
  d->p = q + 1;
  return 0;
}

/* An object key at d->p (an opening quote) without escapes: 1 and its bytes
 * in the input (d->p past the closing quote), nothing pushed; 0 if it has
 * an escape (d->p unchanged: dec_string decodes it); -1 on error. */
static int dec_key_span(json_dec *d, const char **ks, size_t *kl, unsigned *kh) {
  const unsigned char *open = d->p, *p = d->p + 1, *end = d->end, *start = p;
  unsigned h = 2166136261u; /* json_hash, in the same pass */
  for (;;) {
    unsigned c;
    if (p >= end) return dec_fail(d, "unterminated string", open);
    c = *p;
    if (c == '"') break;
    if (c == '\\') return 0;
    if (c < 0x20) return dec_fail(d, "control character in string", p);
    if (c < 0x80) {
      h = (h ^ c) * 16777619u;
      p++;
    } else {
      int n = dec_utf8(p, end), i;
      if (n == 0) return dec_fail(d, "invalid UTF-8 in string", p);
      for (i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
      p += n;
    }
  }
  *ks = (const char *)start;
  *kl = (size_t)(p - start);
  *kh = h;
  d->p = p + 1;
  return 1;
}

#define DEC_DIGIT(c) ((unsigned)(c) - '0' < 10u)

static int dec_number(json_dec *d, int kind) {
  const unsigned char *p = d->p, *end = d->end, *start = p;
  unsigned long long acc = 0;
  int neg = 0, big = 0, isfloat = 0;
  if (*p == '-') {
    neg = 1;
    p++;
  }
  if (p >= end) return dec_fail(d, "unexpected end of input", p);
  if (*p == '0') {
    p++;
    if (p < end && DEC_DIGIT(*p)) return dec_fail(d, "leading zero in number", p - 1);
  } else if (DEC_DIGIT(*p)) {
    while (p < end && DEC_DIGIT(*p)) {
      unsigned dg = *p++ - '0';
      if (acc > (18446744073709551615ull - dg) / 10) big = 1;
      else acc = acc * 10 + dg;
    }
  } else {
    return dec_fail(d, "digit expected", p);
  }
  if (p < end && *p == '.') {
    p++;
    if (p >= end || !DEC_DIGIT(*p)) return dec_fail(d, "digit expected after '.'", p);
    while (p < end && DEC_DIGIT(*p)) p++;
    isfloat = 1;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    if (p >= end || !DEC_DIGIT(*p)) return dec_fail(d, "digit expected in exponent", p);
    while (p < end && DEC_DIGIT(*p)) p++;
    isfloat = 1;
  }
  d->p = p;
  if (!isfloat && !big && (neg ? acc <= 9223372036854775808ull : acc <= 9223372036854775807ull)) {
    lua_Integer v;
    if (!neg) v = (lua_Integer)acc;
    else if (acc == 9223372036854775808ull) v = LUA_MININTEGER;
    else v = -(lua_Integer)acc;
    if (kind == JK_DOUBLE) lua_pushnumber(d->L, (lua_Number)v);
    else lua_pushinteger(d->L, v);
    return 0;
  }
  {
    size_t len = (size_t)(p - start);
    char lbuf[64], *buf = len < sizeof lbuf ? lbuf : (char *)dec_scratch(d, len + 1), *ep;
    double x;
    memcpy(buf, start, len);
    buf[len] = '\0';
    x = strtod(buf, &ep);
    if (ep != buf + len) { /* a locale with another decimal point */
      char *dot = strchr(buf, '.');
      if (dot != NULL) *dot = localeconv()->decimal_point[0];
      x = strtod(buf, &ep);
    }
    if (kind == JK_INT && x == floor(x) && x >= -9223372036854775808.0 && x < 9223372036854775808.0)
      lua_pushinteger(d->L, (lua_Integer)x);
    else lua_pushnumber(d->L, (lua_Number)x);
  }
  return 0;
}

static int dec_value(json_dec *d, json_type t);

/* Types the members collected on the stack above base (pairs) for model. */
static void dec_retype_pairs(json_dec *d, int base, int model) {
  lua_State *L = d->L;
  int i, top = lua_gettop(L);
  luaL_checkstack(L, 8, "json: nesting");
  for (i = base + 1; i + 1 <= top; i += 2) {
    size_t len;
    const char *k = lua_tolstring(L, i, &len);
    json_type t = json_find_field(d->sc, model, k, len);
    if (t.kind != JK_PLAIN) json_coerce(L, d->sc, d->mts, i + 1, t);
  }
}

/* Same for members already stored in the table at base. */
static void dec_retype_table(json_dec *d, int base, int model) {
  lua_State *L = d->L;
  luaL_checkstack(L, 8, "json: nesting");
  lua_pushnil(L);
  while (lua_next(L, base)) {
    size_t len;
    const char *k = lua_tolstring(L, -2, &len);
    json_type t = json_find_field(d->sc, model, k, len);
    if (t.kind != JK_PLAIN) {
      json_coerce(L, d->sc, d->mts, lua_gettop(L), t);
      lua_pushvalue(L, -2);
      lua_pushvalue(L, -2);
      lua_rawset(L, base);
    }
    lua_pop(L, 1);
  }
}

/* The n key/value pairs on the stack above base into a new table (sized for
   nrec keys) that replaces the placeholder at base; in order, so that a
   repeated key keeps its last value.  Leaves the stack at base. */
static void dec_pairs_to_table(lua_State *L, int base, int n, int nrec) {
  int i;
  lua_createtable(L, 0, nrec);
  lua_replace(L, base);
  for (i = 0; i < n; i++) {
    lua_pushvalue(L, base + 1 + 2 * i);
    lua_pushvalue(L, base + 2 + 2 * i);
    lua_rawset(L, base);
  }
  lua_settop(L, base);
}

/* The n values on the stack above base into a new array (sized for narr
   items) that replaces the placeholder at base.  Leaves the stack at base. */
static void dec_items_to_table(lua_State *L, int base, int n, int narr) {
  int i;
  lua_createtable(L, narr, 0);
  lua_replace(L, base);
  for (i = n; i >= 1; i--) lua_rawseti(L, base, i);
}

/* After a member or an element: 1 another follows (the ',' and the space
 * after it consumed), 0 the container ends (close consumed), -1 error. */
static inline int dec_next(json_dec *d, char close, const char *expected) {
  DEC_WS(d);
  if (d->p >= d->end) return dec_fail(d, "unexpected end of input", d->p);
  if (*d->p == ',') {
    d->p++;
    DEC_WS(d);
    return 1;
  }
  if (*d->p == (unsigned char)close) {
    d->p++;
    return 0;
  }
  return dec_fail(d, expected, d->p);
}

static int dec_object(json_dec *d, json_type t) {
  lua_State *L = d->L;
  const json_schema *sc = d->sc;
  int model = t.kind == JK_MODEL ? t.model : -1;
  int discr = sc != NULL && (t.kind == JK_TOP || t.kind == JK_MODEL);
  int base, n = 0, direct = 0, nx;
  if (++d->depth > JSON_MAX_DEPTH) return dec_fail(d, "nesting too deep", d->p);
  if (!lua_checkstack(L, 48)) return dec_fail(d, "out of Lua stack", d->p);
  d->p++;
  lua_pushnil(L); /* the table's slot */
  base = lua_gettop(L);
  DEC_WS(d);
  if (d->p < d->end && *d->p == '}') {
    d->p++;
  } else {
    for (;;) {
      const char *k;
      size_t kl;
      json_type ft = json_plain;
      int is_type;
      if (d->p >= d->end) return dec_fail(d, "unexpected end of input", d->p);
      if (*d->p != '"') return dec_fail(d, "object key expected", d->p);
      if (discr) { /* [perf] keys of typed objects: the schema's strings */
        unsigned kh;
        int r = dec_key_span(d, &k, &kl, &kh);
        if (r < 0) return -1;
        if (r == 0) {
          if (dec_string(d, &k, &kl)) return -1;
          if (model >= 0) ft = json_find_field(sc, model, k, kl);
        } else {
          const json_field *f = model >= 0 ? json_field_hashed(sc, model, k, kl, kh) : NULL;
          if (f != NULL) {
            ft = f->t;
            lua_rawgeti(L, d->mts, f->key);
          } else if (kl == 4 && memcmp(k, "type", 4) == 0) {
            lua_rawgeti(L, d->mts, sc->type_key);
          } else {
            lua_pushlstring(L, k, kl);
          }
        }
      } else if (dec_string(d, &k, &kl)) {
        return -1;
      }
      is_type = discr && kl == 4 && memcmp(k, "type", 4) == 0;
      DEC_WS(d);
      if (d->p >= d->end) return dec_fail(d, "unexpected end of input", d->p);
      if (*d->p != ':') return dec_fail(d, "':' expected", d->p);
      d->p++;
      DEC_WS(d);
      if (dec_value(d, ft)) return -1;
      if (is_type && lua_type(L, -1) == LUA_TSTRING) {
        size_t vl;
        const char *v = lua_tolstring(L, -1, &vl);
        int m = json_find_model(sc, v, vl);
        if (m >= 0 && m != model) {
          model = m;
          if (direct) dec_retype_table(d, base, model);
          else if (n > 0) dec_retype_pairs(d, base, model);
        }
      }
      n++;
      if (direct) {
        lua_rawset(L, base);
      } else if (n == JSON_CHUNK) { /* too many for the stack: fill a table from here on */
        dec_pairs_to_table(L, base, n, 2 * n);
        direct = 1;
      } else if ((n & 15) == 0 && !lua_checkstack(L, 48)) {
        return dec_fail(d, "out of Lua stack", d->p);
      }
      nx = dec_next(d, '}', "',' or '}' expected");
      if (nx < 0) return -1;
      if (nx == 0) break;
    }
  }
  if (!direct) dec_pairs_to_table(L, base, n, n);
  if (model >= 0) {
    lua_rawgeti(L, d->mts, model + 1);
    lua_setmetatable(L, base);
  }
  d->depth--;
  return 0;
}

static int dec_array(json_dec *d, json_type t) {
  lua_State *L = d->L;
  int base, n = 0, direct = 0, nx;
  json_type et;
  if (t.kind == JK_TOP) et = json_top;
  else if (t.kind == JK_LIST) {
    et.kind = t.elem;
    et.elem = 0;
    et.model = t.model;
  } else et = json_plain;
  if (++d->depth > JSON_MAX_DEPTH) return dec_fail(d, "nesting too deep", d->p);
  if (!lua_checkstack(L, 48)) return dec_fail(d, "out of Lua stack", d->p);
  d->p++;
  lua_pushnil(L);
  base = lua_gettop(L);
  DEC_WS(d);
  if (d->p < d->end && *d->p == ']') {
    d->p++;
    lua_createtable(L, 0, 0);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &json_array_mt_key);
    lua_setmetatable(L, -2);
    lua_replace(L, base);
    d->depth--;
    return 0;
  }
  for (;;) {
    if (d->p >= d->end) return dec_fail(d, "unexpected end of input", d->p);
    if (dec_value(d, et)) return -1;
    n++;
    if (direct) {
      lua_rawseti(L, base, n);
    } else if (n == JSON_CHUNK) {
      dec_items_to_table(L, base, n, 2 * n);
      direct = 1;
    } else if ((n & 31) == 0 && !lua_checkstack(L, 48)) {
      return dec_fail(d, "out of Lua stack", d->p);
    }
    nx = dec_next(d, ']', "',' or ']' expected");
    if (nx < 0) return -1;
    if (nx == 0) break;
  }
  if (!direct) dec_items_to_table(L, base, n, n);
  d->depth--;
  return 0;
}

static int dec_literal(json_dec *d, const char *word, size_t len) {
  if ((size_t)(d->end - d->p) < len || memcmp(d->p, word, len) != 0)
    return dec_fail(d, "invalid literal", d->p);
  d->p += len;
  return 0;
}

static int dec_value(json_dec *d, json_type t) {
  const char *k;
  size_t kl;
  if (d->p >= d->end) return dec_fail(d, "unexpected end of input", d->p);
  switch (*d->p) {
  case '"':
    return dec_string(d, &k, &kl);
  case '{':
    return dec_object(d, t);
  case '[':
    return dec_array(d, t);
  case '-': case '0': case '1': case '2': case '3': case '4':
  case '5': case '6': case '7': case '8': case '9':
    return dec_number(d, t.kind);
  case 't':
    if (dec_literal(d, "true", 4)) return -1;
    lua_pushboolean(d->L, 1);
    return 0;
  case 'f':
    if (dec_literal(d, "false", 5)) return -1;
    lua_pushboolean(d->L, 0);
    return 0;
  case 'n':
    if (dec_literal(d, "null", 4)) return -1;
    lua_pushlightuserdata(d->L, NULL);
    return 0;
  default:
    dec_fail(d, "unexpected character", d->p);
    d->ech = *d->p;
    return -1;
  }
}

static void dec_format_error(const json_dec *d, char *err, size_t errlen) {
  size_t at = (size_t)(d->epos - d->s) + 1;
  if (errlen == 0) return;
  if (d->ech >= 0x21 && d->ech < 0x7f)
    snprintf(err, errlen, "%s '%c' at byte %zu", d->emsg, d->ech, at);
  else if (d->ech >= 0)
    snprintf(err, errlen, "%s (byte 0x%02x) at byte %zu", d->emsg, (unsigned)d->ech, at);
  else
    snprintf(err, errlen, "%s at byte %zu", d->emsg, at);
}

/* Unprotected decode: must run inside a protected call (any lua_CFunction
 * does).  On success pushes one value and returns 0; on failure pushes
 * nothing, returns the 1-based byte offset of the problem and formats
 * err. */
static size_t json_decode_raw(lua_State *L, const char *s, size_t n, const char *type, char *err,
                              size_t errlen) {
  json_dec d;
  int top = lua_gettop(L);
  json_type root = json_top;
  memset(&d, 0, sizeof d);
  d.L = L;
  d.s = d.p = (const unsigned char *)s;
  d.end = d.s + n;
  if (!lua_checkstack(L, 64)) {
    if (errlen > 0) snprintf(err, errlen, "out of Lua stack at byte 1");
    return 1;
  }
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &json_key_schema) == LUA_TUSERDATA) {
    d.sc = (const json_schema *)lua_touserdata(L, -1);
    lua_getiuservalue(L, -1, 1);
  } else {
    lua_pushnil(L);
  }
  d.mts = top + 2;
  lua_pushnil(L);
  d.scratch = top + 3;
  if (type != NULL) root = json_parse_type(d.sc, type, strlen(type));
  else if (d.sc == NULL) root = json_plain;
  DEC_WS(&d);
  if (dec_value(&d, root) == 0) {
    DEC_WS(&d);
    if (d.p == d.end) {
      lua_replace(L, top + 1);
      lua_settop(L, top + 1);
      return 0;
    }
    dec_fail(&d, "trailing garbage", d.p);
  }
  lua_settop(L, top);
  dec_format_error(&d, err, errlen);
  return (size_t)(d.epos - d.s) + 1;
}

struct json_call {
  const char *s;
  size_t n;
  const char *type;
  char *err;
  size_t errlen;
  size_t rc;
};

static int json_decode_pcall(lua_State *L) {
  struct json_call *a = (struct json_call *)lua_touserdata(L, 1);
  a->rc = json_decode_raw(L, a->s, a->n, a->type, a->err, a->errlen);
  return a->rc == 0 ? 1 : 0;
}

int json_decode_as(lua_State *L, const char *s, size_t n, const char *type, char *err,
                   size_t errlen) {
  struct json_call a;
  a.s = s;
  a.n = n;
  a.type = type;
  a.err = err;
  a.errlen = errlen;
  a.rc = 0;
  if (errlen > 0) err[0] = '\0';
  if (!lua_checkstack(L, 4)) {
    if (errlen > 0) snprintf(err, errlen, "out of Lua stack at byte 1");
    return -1;
  }
  lua_pushcfunction(L, json_decode_pcall);
  lua_pushlightuserdata(L, &a);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    if (errlen > 0) {
      const char *m = lua_tostring(L, -1);
      snprintf(err, errlen, "%s at byte 1", m != NULL ? m : "error");
    }
    lua_pop(L, 1);
    return -1;
  }
  if (a.rc != 0) {
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

int json_decode_buf(lua_State *L, const char *s, size_t n, char *err, size_t errlen) {
  return json_decode_as(L, s, n, NULL, err, errlen);
}

/* core.json_decode(text [, type]) */
static int json_decode_l(lua_State *L) {
  size_t n, at;
  const char *s, *type;
  char err[160];
  luaL_checktype(L, 1, LUA_TSTRING);
  s = lua_tolstring(L, 1, &n);
  type = luaL_optstring(L, 2, NULL);
  at = json_decode_raw(L, s, n, type, err, sizeof err);
  if (at == 0) return 1;
  lua_pushnil(L);
  lua_pushstring(L, err);
  lua_pushinteger(L, (lua_Integer)at);
  return 3;
}

/* ---------------------------------------------------------------- open */

void json_open(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"json_decode", json_decode_l},
    {"json_schema", json_schema_set}, {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
  if (luaL_newmetatable(L, JSON_SCHEMA_MT)) {
    lua_pushcfunction(L, json_schema_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &json_array_mt_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushliteral(L, "json.array");
    lua_setfield(L, -2, "__name");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &json_array_mt_key);
  }
  lua_setfield(L, -2, "json_array_mt");
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "json_null");
  json_encode_open(L);
}
