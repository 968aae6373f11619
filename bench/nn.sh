#!/bin/sh
# recur against PyTorch on this machine, in one run: one training step of the First
# Convergence Bias network (784-100-100-100-10 tanh, batch 50, SGD) and one full MNIST epoch
# (784-256-256-10 ReLU, Adam, batch 100), with 1 and 2 threads. Prints each time and the
# speed ratio (PyTorch's time / recur's: above 1, recur is faster). Target: >= 2 per step (issue
# 15). The fcb scripts also print the step's GEMM calls replayed alone (its floor with this BLAS).
#
# Threads. recur: recur.threads(n) (OpenBLAS threads). PyTorch, the fair setting for these
# small ops: torch.set_num_threads(1) (intra-op threads only add overhead here) and
# OPENBLAS_NUM_THREADS=n for its GEMMs.
# usage: sh bench/nn.sh [BUILD_DIR]     (the MNIST epoch needs data/mnist: data/fetch mnist)
set -eu
case "${1:-}" in -h | --help)
  echo "usage: sh bench/nn.sh [BUILD_DIR]   (BUILD_DIR defaults to build; part of bench/run.sh)"
  echo "Times a First Convergence Bias training step and an MNIST epoch (needs data/fetch mnist)"
  echo "against PyTorch, with 1 and 2 threads. BENCH_STEPS sets the steps timed (default 2000)."
  exit 0 ;;
esac
build=${1:-build}
bin="$build/recur"
py=/usr/bin/python3
steps=${BENCH_STEPS:-2000}
have_torch=0
if [ -x "$py" ] && "$py" -c 'import torch' 2>/dev/null; then have_torch=1; fi
[ "$have_torch" = 1 ] || echo "pytorch: not installed (apt-get install python3-torch): ratios skipped"
# a PyTorch figure as its own row of the results file (bench/run.sh sets RECUR_BENCH_ROWS)
ref_row() {
  if [ -n "${RECUR_BENCH_ROWS:-}" ]; then
    printf '{"bench": "nn", "name": "%s", "value": %s, "unit": "%s", "better": "lower"}\n' \
      "$1" "$2" "$3" >> "$RECUR_BENCH_ROWS"
  fi
}
num() { sed -E 's/.*: ([0-9.]+) (ms|s).*/\1/'; }
ratio() { awk -v t="$1" -v r="$2" -v what="$3" -v target="$4" 'BEGIN {
  printf "%s: recur %s, pytorch %s: recur runs at %.2fx PyTorch'"'"'s speed%s\n", what, r, t, t / r,
    target != "" ? " (target >= " target ") " (t / r >= target ? "met" : "MISSED") : "" }'; }
for t in 1 2; do
  r=$(OPENBLAS_NUM_THREADS=$t "$bin" bench/nn/fcb_step.lua "$t" "$steps")
  echo "$r"
  if [ "$have_torch" = 1 ]; then
    p=$(OPENBLAS_NUM_THREADS=$t "$py" bench/nn/fcb_step_torch.py "$steps")
    echo "$p"
    ratio "$(echo "$p" | head -1 | num) ms" "$(echo "$r" | head -1 | num) ms" "fcb step, $t thread(s)" 2
    ref_row "fcb step ${t}T pytorch" "$(echo "$p" | head -1 | num)" ms
    ref_row "fcb GEMM floor ${t}T pytorch" "$(echo "$p" | sed -n 2p | num)" ms
  fi
done
if [ -f data/mnist/train-images-idx3-ubyte ]; then
  for t in 1 2; do
    r=$(OPENBLAS_NUM_THREADS=$t "$bin" bench/nn/mnist_epoch.lua "$t")
    echo "$r"
    if [ "$have_torch" = 1 ]; then
      p=$(OPENBLAS_NUM_THREADS=$t "$py" bench/nn/mnist_epoch_torch.py)
      echo "$p"
      ratio "$(echo "$p" | num) s" "$(echo "$r" | num) s" "mnist epoch, $t thread(s)" ""
      ref_row "mnist epoch ${t}T pytorch" "$(echo "$p" | num)" s
    fi
  done
else
  echo "mnist epoch: skipped (data/mnist is missing: data/fetch mnist)"
fi
