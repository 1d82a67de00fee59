#!/bin/sh
# Installs the Debian 12 packages ari-lua needs (only those missing).
#   sh tools/deps.sh          what building and running need
#   sh tools/deps.sh --test   that and what only the tests need (busted,
#                             valgrind, clang/libFuzzer, nginx, socat, ...);
#                             `make test`, `make check`, `make valgrind`,
#                             `make fuzz` and .ci/run call this themselves
# Installing needs root; with nothing missing it needs nothing.
set -e
BUILD_PKGS="make gcc libc6-dev pkg-config liblua5.4-dev lua5.4 libcurl4-openssl-dev libssl-dev \
libuv1-dev ca-certificates"
TEST_PKGS="lua-busted lua-cjson luarocks valgrind curl openssl nginx-light clang libclang-rt-14-dev socat"
case "${1:-}" in
  "") PKGS=$BUILD_PKGS ;;
  --test) PKGS="$BUILD_PKGS $TEST_PKGS" ;;
  *) echo "usage: sh tools/deps.sh [--test]" >&2; exit 2 ;;
esac
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "deps: not a Debian system; install the equivalents of: $PKGS"
  exit 0
fi
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
  echo "deps: all present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing$missing; run as root: sh tools/deps.sh ${1:-}" >&2
  exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq $missing
