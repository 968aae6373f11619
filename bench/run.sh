#!/bin/sh
# Runs every benchmark in one go on this machine and prints the ratios against PyTorch and
# direct BLAS, with the machine facts (CPU, OpenBLAS version and core, the variables that steer
# it), and keeps every benchmark's rows in bench/results/<UTC date-time>.json (compare two
# with bench/compare). usage: sh bench/run.sh [BUILD_DIR]
set -eu
case "${1:-}" in -h | --help)
  echo "usage: sh bench/run.sh [BUILD_DIR]   (what make bench runs; BUILD_DIR defaults to build)"
  echo "Runs every benchmark (small op, matmul, nn, char-RNN, word LM, cells, data, embedding call) and prints"
  echo "the ratios against PyTorch (/usr/bin/python3, when torch is installed) and direct BLAS."
  echo "BENCH_N sets the small-op iterations (default 1000000). Every row goes to"
  echo "bench/results/<UTC date-time>.json (BENCH_RESULTS=FILE: there instead); bench/compare A B"
  echo "compares two such files. BENCH_QUICK=1: every script in its quickest mode (checks that"
  echo "the benchmarks and the results file work; its figures mean little). See bench/README.md."
  exit 0 ;;
esac
build=${1:-build}
export LUA_CPATH="$(pwd)/$build/?.so;;"
quick=${BENCH_QUICK:-0}
if [ "$quick" = 1 ]; then
  n=${BENCH_N:-20000}
  BENCH_STEPS=${BENCH_STEPS:-20}
  export BENCH_STEPS
else
  n=${BENCH_N:-1000000}
fi
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
results=${BENCH_RESULTS:-bench/results/$stamp.json}
mkdir -p "$(dirname "$results")"
# every script appends its rows here (bench/lib/rows.lua); collected into $results at the end
RECUR_BENCH_ROWS=$(mktemp)
export RECUR_BENCH_ROWS
trap 'rm -f "$RECUR_BENCH_ROWS"' EXIT
echo "bench run $stamp"
lua5.4 -e 'print(require("bench.lib.rows").describe())'
recur_line=$(lua5.4 bench/small_op.lua "$n")
echo "$recur_line"
recur_ns=$(echo "$recur_line" | sed -E 's/.*: ([0-9]+) ns.*/\1/')
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  torch_line=$(/usr/bin/python3 bench/small_op_torch.py "$n")
  echo "$torch_line"
  torch_ns=$(echo "$torch_line" | sed -E 's/.*: ([0-9]+) ns.*/\1/')
  awk -v r="$recur_ns" -v t="$torch_ns" 'BEGIN { q = r / t
    printf "small-op overhead: recur / pytorch = %.3f (target <= 0.333) %s\n", q, q <= 0.333 ? "met" : "MISSED" }'
  printf '{"bench": "small_op", "name": "a + b, 4 floats, pytorch", "value": %s, "unit": "ns", "better": "lower"}\n' \
    "$torch_ns" >> "$RECUR_BENCH_ROWS"
else
  echo "pytorch: not installed (apt-get install python3-torch) - ratio skipped"
fi
if [ -f bench/matmul.sh ]; then sh bench/matmul.sh "$build"; fi
if [ -f bench/nn.sh ]; then sh bench/nn.sh "$build"; fi
# C -> Lua call overhead through the embedding API (include/recur.h)
if [ -x "$build/bench/embed_call" ]; then
  if [ "$quick" = 1 ]; then "$build/bench/embed_call" 500; else "$build/bench/embed_call"; fi
fi
for f in bench/*.lua; do
  # small_op ran above; json_cjson (needs lua-cjson) and mpi_allreduce (needs mpirun) are run
  # by hand, as bench/README.md says
  case "$f" in bench/small_op.lua | bench/json_cjson.lua | bench/mpi_allreduce.lua) continue ;; esac
  quick_args=
  if [ "$quick" = 1 ]; then
    case "$f" in
      bench/charrnn.lua) quick_args="--quick --cells rnn" ;;
      bench/word_lm.lua) quick_args="--quick" ;;
      bench/rnn_cells.lua) quick_args="--hidden 64 --cells lstm --reps 1" ;;
      bench/sample_threads.lua) quick_args="--hidden 64 --rounds 1" ;;
      bench/word_readout.lua) quick_args="--rounds 1" ;;
      bench/json_cjson.lua) quick_args="--n 100 --reps 1" ;;
      bench/mpi_allreduce.lua) quick_args="--sizes 1000 --reps 3" ;;
    esac
  fi
  # shellcheck disable=SC2086 # the quick arguments are separate words
  lua5.4 "$f" $quick_args
done
BENCH_OUT="$results" lua5.4 -e 'local rows, out = require("bench.lib.rows"), os.getenv("BENCH_OUT")
  local n = rows.collect(os.getenv("RECUR_BENCH_ROWS"), out)
  print(string.format("results: %s (%d rows; compare two runs with bench/compare A.json B.json)", out, n))'
