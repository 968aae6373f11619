#!/bin/sh
# Installs (with apt-get) only the Debian packages recur needs that are missing.
set -eu
pkgs="build-essential lua5.4 liblua5.4-dev libopenblas-dev lua-busted libreadline-dev zlib1g-dev gnuplot-nox python3-numpy pkgconf"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "deps: installing$missing"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
else
  echo "deps: all present"
fi
