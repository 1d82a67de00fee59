/* fuzz_url.c - libFuzzer target: percent-encoding and URL building
 * (lua/ari/http.lua urlencode, lua/ari/client.lua build and call).
 *
 * The invariants live in spec/fuzz/url_check.lua: an encoded value holds
 * only unreserved characters and %XX and decodes back to the input; an id
 * cannot leave its path segment; query values and list items split back;
 * a body round-trips through the JSON encoder.
 */
#include "fuzz_common.h"

#include <stdint.h>

static lua_State *fu_L;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fu_L = fuzz_state();
  fuzz_lua(fu_L, "return dofile('" FUZZ_LUADIR "/../spec/fuzz/url_check.lua')", 1);
  lua_setglobal(fu_L, "url_check");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  fuzz_call_global(fu_L, "url_check", data, size);
  lua_gc(fu_L, LUA_GCSTEP, 0);
  return 0;
}
