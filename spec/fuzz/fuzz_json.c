/* fuzz_json.c - libFuzzer target: the JSON decoder (src/json.c).
 *
 * Each input is decoded by json_decode_buf in a state without a schema and
 * in one with the ARI models registered (lua/ari/models.lua), and by
 * json_decode_as with a root type chosen by the input's length.  Checked:
 * a failure leaves the stack as it was and gives a "... at byte N" message
 * with 1 <= N <= size + 1; a success pushes exactly one value, and that
 * value, when it can be encoded, decodes again.
 */
#include "fuzz_common.h"

#include <stdint.h>

static lua_State *fj_plain, *fj_schema;

static const char *const fj_types[] = {
  "Message", "Channel", "List[Channel]", "Bridge", "List[Bridge]", "Playback", "LiveRecording",
  "StoredRecording", "AsteriskInfo", "List[Endpoint]", "Variable", "Application", "Event",
  "StasisStart", "List[Sound]", "DeviceState", "Mailbox", "object",
};
#define FJ_NTYPES (sizeof fj_types / sizeof fj_types[0])

static const char fj_check[] =
  "local core = require 'ari.core'\n"
  "return function(v)\n"
  "  local ok, text = pcall(core.json_encode, v)\n"
  "  if not ok then return end\n"
  "  local again, err = core.json_decode(text)\n"
  "  if again == nil and text ~= 'null' then error('re-decode failed: ' .. tostring(err) .. ' of ' .. text:sub(1, 200)) end\n"
  "end\n";

static void fj_err_ok(const char *err, size_t size) {
  const char *at = strstr(err, " at byte ");
  long n;
  if (at == NULL) {
    fprintf(stderr, "fuzz_json: error without position: %s\n", err);
    abort();
  }
  n = strtol(at + 9, NULL, 10);
  if (n < 1 || (size_t)n > size + 1) {
    fprintf(stderr, "fuzz_json: position out of range (%ld, size %zu): %s\n", n, size, err);
    abort();
  }
}

static void fj_one(lua_State *L, const uint8_t *data, size_t size, const char *type, int check) {
  char err[256];
  int top = lua_gettop(L);
  int rc = json_decode_as(L, (const char *)data, size, type, err, sizeof err);
  if (rc != 0) {
    if (lua_gettop(L) != top) abort();
    fj_err_ok(err, size);
    return;
  }
  if (lua_gettop(L) != top + 1) abort();
  if (check) {
    lua_getglobal(L, "fj_check");
    lua_insert(L, -2);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) fuzz_die(L, "round trip");
  }
  lua_settop(L, top);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fj_plain = fuzz_state();
  fj_schema = fuzz_state();
  fuzz_lua(fj_schema, "require 'ari.models'", 0);
  fuzz_lua(fj_plain, fj_check, 1);
  lua_setglobal(fj_plain, "fj_check");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fj_one(fj_plain, data, size, NULL, 1);
  fj_one(fj_schema, data, size, NULL, 0);
  fj_one(fj_schema, data, size, fj_types[size % FJ_NTYPES], 0);
  lua_gc(fj_plain, LUA_GCSTEP, 0);
  lua_gc(fj_schema, LUA_GCSTEP, 0);
  return 0;
}
