#!/bin/sh
# A short ari-lua run under valgrind: fails on any definite leak or invalid
# access.  Runs the core spec's kind of work through the host.
set -e
BIN=${ARI_LUA_BIN:-./ari-lua}
SCRIPT=${1:-tools/valgrind-run.lua}
valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite \
  --error-exitcode=9 "$BIN" "$SCRIPT"
echo "valgrind: no definite leaks, no memory errors"
