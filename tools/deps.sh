#!/bin/sh
# Installs (with apt-get) the Debian packages recur and its test suite need that are missing:
# the compiler, Lua 5.4, OpenBLAS, zlib, jansson (the safetensors header), readline,
# lua-argparse (the scripts' command line), busted, and every tool a test calls (script(1) from
# bsdutils for the terminal tests, objdump and nm from binutils, gnuplot for plots, numpy to read
# checkpoints independently, pkg-config for the embedding example; ZeroMQ, libcrypto and
# lua-cjson for the Jupyter kernel, jupyter_client and nbclient to test it, luarocks for the
# rockspec; Open MPI for recur.mpi and its tests).
set -eu
pkgs="build-essential binutils bsdutils lua5.4 liblua5.4-dev libopenblas-dev lua-argparse lua-busted libreadline-dev zlib1g-dev libjansson-dev gnuplot-nox python3-numpy pkgconf libzmq3-dev libssl-dev lua-cjson python3-jupyter-client python3-nbclient luarocks openmpi-bin libopenmpi-dev"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
  echo "deps: all present"
  exit 0
fi
echo "deps: installing$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "deps: these packages are missing and this is not root, and there is no sudo; as root, run:" >&2
    echo "  apt-get update && apt-get install -y$missing" >&2
    exit 1
  fi
  SUDO=sudo
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
