#!/bin/sh
# Times rc_matmul against cblas_sgemm called directly (see bench/matmul.c).
# Run from the repository root after `make`.
set -e
case "${1:-}" in -h | --help)
  echo "usage: sh bench/matmul.sh   (from the repository root, after make; part of bench/run.sh)"
  echo "Builds build/bench_matmul from bench/matmul.c and times rc_matmul against cblas_sgemm."
  exit 0 ;;
esac
cc -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -Wall -Wextra \
  -I/usr/include/x86_64-linux-gnu/openblas-pthread \
  bench/matmul.c build/librecur.a -lopenblas -ljansson -lz -lm -lpthread -o build/bench_matmul
build/bench_matmul
