#!/bin/sh
# The numerical tests (cells, goldens, threads, tbptt, checkpoint resume, nn, linalg, optimizers,
# gradient checks) under every OpenBLAS kernel this CPU can run (OPENBLAS_CORETYPE) and under
# each of recur's own per-step product kernels (RECUR_GEMM_KERNEL), so that an assertion that
# holds only on one kernel fails here, not on the next machine. Ends with one line
# "N passed, N failed, N skipped" over all passes. Usage: test_kernels.sh BUILD_DIR
set -u
build=${1:-build}
if [ "$#" -gt 0 ] && [ "$1" = "--help" ]; then
  sed -n '2,6p' "$0" | sed 's/^# //'
  exit 0
fi

TESTS="test_matmul test_nn test_rnn test_rnn_gemm
  tests/transcendental_spec.lua tests/rnn_spec.lua tests/rnn_golden_spec.lua tests/rnn_threads_spec.lua tests/rnn_custom_spec.lua
  tests/rnn_module_spec.lua tests/initial_state_spec.lua tests/tbptt_spec.lua
  tests/checkpoint_spec.lua tests/charrnn_spec.lua tests/rnn_generate_spec.lua
  tests/train_mnist_spec.lua tests/linalg_spec.lua
  tests/nn_spec.lua tests/optim_spec.lua tests/gradcheck_random_spec.lua tests/autograd_spec.lua
  tests/reduce_spec.lua"

# The kernels OpenBLAS 0.3.21 (DYNAMIC_ARCH) has for x86-64, with the CPU flags each needs:
# forcing one the CPU lacks would die of an illegal instruction.
flags=$(grep -m 1 '^flags' /proc/cpuinfo 2>/dev/null)
has() {
  for f in "$@"; do
    case " $flags " in *" $f "*) ;; *) return 1 ;; esac
  done
}
cores=""
has sse3 && cores="$cores Prescott"
has sse4_2 && cores="$cores Nehalem"
has avx && cores="$cores Sandybridge"
has avx2 fma && cores="$cores Haswell Zen"
has avx512f avx512bw avx512dq avx512vl avx512cd && cores="$cores SkylakeX"
has avx512f avx512bw avx512dq avx512vl avx512cd avx512_bf16 && cores="$cores Cooperlake"
# recur's own kernels for the per-step products (runtime/rnn_gemm.c): the widest the CPU has is
# the default; these force the narrower ones
kernels="plain"
has avx2 fma && kernels="$kernels avx2"

passed=0
failed=0
skipped=0
out=$(mktemp)
run_pass() { # name, then the environment assignments for the pass
  name=$1
  shift
  echo "== kernels: $name"
  # the kernel OpenBLAS really runs: a name it does not know makes it fall back silently
  got=$(env "$@" "$build/recur" -e 'io.write(recur.config().blas.core)' 2>&1)
  want=$(for a in "$@"; do case "$a" in OPENBLAS_CORETYPE=*) echo "${a#*=}" ;; esac; done)
  if [ -n "$want" ] && [ "$got" != "$want" ]; then
    echo "FAIL kernels: OPENBLAS_CORETYPE=$want runs OpenBLAS's $got kernel"
    failed=$((failed + 1))
    return
  fi
  # shellcheck disable=SC2086
  env "$@" sh tools/run_tests.sh "$build" $TESTS >"$out" 2>&1
  grep -E '^(FAIL|SKIPPED|not ok)' "$out"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$out" | tail -n 1)
  if [ -z "$line" ]; then
    cat "$out"
    echo "FAIL kernels: $name printed no summary"
    failed=$((failed + 1))
    return
  fi
  echo "kernels $name (OpenBLAS $got): $line"
  passed=$((passed + $(echo "$line" | awk '{print $1}')))
  failed=$((failed + $(echo "$line" | awk '{print $3}')))
  skipped=$((skipped + $(echo "$line" | awk '{print $5}')))
}

for c in $cores; do run_pass "OPENBLAS_CORETYPE=$c" OPENBLAS_CORETYPE="$c"; done
for k in $kernels; do run_pass "RECUR_GEMM_KERNEL=$k" RECUR_GEMM_KERNEL="$k"; done
rm -f "$out"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$skipped" -eq 0 ]
