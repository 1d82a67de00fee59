#!/bin/sh
# Installs the Debian 12 packages ari-lua needs to build, test and run
# (only those missing).  Run as root.
set -e
PKGS="make gcc libc6-dev pkg-config liblua5.4-dev lua5.4 lua-cjson lua-busted \
libcurl4-openssl-dev libwebsockets-dev libuv1-dev luarocks valgrind ca-certificates curl openssl nginx-light \
clang libclang-rt-14-dev socat"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
  echo "deps: all present"
  exit 0
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq $missing
