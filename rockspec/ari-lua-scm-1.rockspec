rockspec_format = "3.0"
package = "ari-lua"
version = "scm-1"
source = {
  url = "git+https://example.invalid/ari-lua.git",
}
description = {
  summary = "Asterisk ARI call logic as sequential Lua coroutines, on a C core",
  detailed = [[
    ari-lua is an Asterisk REST Interface client: a C core (libuv loop, libcurl,
    its own WebSocket client with OpenSSL, typed JSON decoding) embedding Lua 5.4, where every call runs as
    its own coroutine. Installs the `ari` Lua modules, the `ari.core` C module and
    the `ari-lua` host, which includes a simulated Asterisk for tests.
  ]],
  license = "MIT",
  labels = { "asterisk", "ari", "telephony", "voip" },
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
external_dependencies = {
  CURL = { library = "curl" },
  LIBUV = { header = "uv.h", library = "uv" },
  OPENSSL = { header = "openssl/ssl.h", library = "ssl" },
}
build = {
  type = "make",
  build_target = "all",
  -- LuaRocks' own flags and directories (see the Makefile): its CFLAGS
  -- (no -Werror), where it found Lua and each external dependency.
  build_variables = {
    CFLAGS = "$(CFLAGS)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    LUA_LIBDIR = "$(LUA_LIBDIR)",
    LUALIB = "$(LUALIB)",
    CURL_INCDIR = "$(CURL_INCDIR)",
    CURL_LIBDIR = "$(CURL_LIBDIR)",
    LIBUV_INCDIR = "$(LIBUV_INCDIR)",
    LIBUV_LIBDIR = "$(LIBUV_LIBDIR)",
    OPENSSL_INCDIR = "$(OPENSSL_INCDIR)",
    OPENSSL_LIBDIR = "$(OPENSSL_LIBDIR)",
    LUADIR = "$(LUADIR)",
  },
  install_target = "install-rock",
  install_variables = {
    PREFIX = "$(PREFIX)",
    BINDIR = "$(BINDIR)",
    LUADIR = "$(LUADIR)",
    CLUADIR = "$(LIBDIR)",
  },
}
