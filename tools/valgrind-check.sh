#!/bin/sh
# Short ari-lua runs under valgrind: fails on any definite leak or invalid
# access.  The first exercises timers and coroutines; the second a whole
# call (HTTP client and server, WebSocket client and server, JSON, the
# simulated Asterisk) through examples/hello.lua under --sim.
set -e
BIN=${ARI_LUA_BIN:-./ari-lua}
VG="valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=9"
$VG "$BIN" tools/valgrind-run.lua
$VG "$BIN" --sim examples/hello.lua > /dev/null
echo "valgrind: no definite leaks, no memory errors"
