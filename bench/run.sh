#!/bin/sh
# Runs every benchmark in one go on this machine and prints the ratios against PyTorch and
# direct BLAS. usage: sh bench/run.sh [BUILD_DIR]
set -eu
case "${1:-}" in -h | --help)
  echo "usage: sh bench/run.sh [BUILD_DIR]   (what make bench runs; BUILD_DIR defaults to build)"
  echo "Runs every benchmark (small op, matmul, nn, char-RNN, cells, data, embedding call) and prints"
  echo "the ratios against PyTorch (/usr/bin/python3, when torch is installed) and direct BLAS."
  echo "BENCH_N sets the small-op iterations (default 1000000). See bench/README.md."
  exit 0 ;;
esac
build=${1:-build}
export LUA_CPATH="$(pwd)/$build/?.so;;"
n=${BENCH_N:-1000000}
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(date -u +%Y-%m-%d)"
lua5.4 -e 'local r = require "recur"; local c = r.config and r.config(); if c then print(string.format("%s, Lua %s, BLAS %s %s (%s threads)", c.version, c.lua, c.blas.vendor, c.blas.version, c.blas.threads)) end'
recur_line=$(lua5.4 bench/small_op.lua "$n")
echo "$recur_line"
recur_ns=$(echo "$recur_line" | sed -E 's/.*: ([0-9]+) ns.*/\1/')
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  torch_line=$(/usr/bin/python3 bench/small_op_torch.py "$n")
  echo "$torch_line"
  torch_ns=$(echo "$torch_line" | sed -E 's/.*: ([0-9]+) ns.*/\1/')
  awk -v r="$recur_ns" -v t="$torch_ns" 'BEGIN { printf "small-op overhead: recur / pytorch = %.3f (target <= 0.333)\n", r / t }'
else
  echo "pytorch: not installed (apt-get install python3-torch) - ratio skipped"
fi
if [ -f bench/matmul.sh ]; then sh bench/matmul.sh "$build"; fi
if [ -f bench/nn.sh ]; then sh bench/nn.sh "$build"; fi
# C -> Lua call overhead through the embedding API (include/recur.h)
if [ -x "$build/bench/embed_call" ]; then "$build/bench/embed_call"; fi
for f in bench/*.lua; do
  case "$f" in bench/small_op.lua) continue ;; esac
  lua5.4 "$f"
done
