/* json.h - the JSON decoder of ari.core, callable from C (ws.c, fuzzers).
 *
 * Both functions decode the n bytes at s (need not be NUL-terminated) with
 * the schema registered by core.json_schema (if any) and run in protected
 * mode, so they may be called from a libuv callback outside any pcall.
 * On success they push exactly one value and return 0.  On failure they
 * push nothing, write "message at byte N" (N: 1-based offset of the
 * problem) into err (always NUL-terminated when errlen > 0) and return
 * nonzero.
 */
#ifndef ARI_JSON_H
#define ARI_JSON_H

#include <stddef.h>
#include <lua.h>

int json_decode_buf(lua_State *L, const char *s, size_t n, char *err, size_t errlen);

/* The same, with the root typed as `type` ("Channel", "List[Channel]", ...,
 * any type string accepted in a schema field); NULL means untyped. */
int json_decode_as(lua_State *L, const char *s, size_t n, const char *type, char *err,
                   size_t errlen);

/* Shared by json.c and json_encode.c. */
#define JSON_MAX_DEPTH 256
extern const char json_array_mt_key; /* registry key (its address): core.json_array_mt */
/* Length of the valid UTF-8 sequence at p (a non-ASCII lead byte), or 0. */
int json_utf8_len(const unsigned char *p, const unsigned char *end);
/* Adds json_encode to the module table on top of the stack (json_open calls it). */
void json_encode_open(lua_State *L);

#endif
