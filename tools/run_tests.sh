#!/bin/sh
# Runs C tests and busted specs; prints each failure and ends with one line
# "N passed, N failed, N skipped" that counts them all.
# Usage: run_tests.sh BUILD_DIR [TEST ...]
# A TEST is a C test's name (test_rnn: BUILD_DIR/tests/test_rnn) or a spec's path
# (tests/rnn_spec.lua); with none, every C test and every tests/*_spec.lua runs.
# A skipped test (busted's pending, TAP "# SKIP") is no pass: it is counted on its own and
# fails the run, since `make deps` installs every tool the suite uses and the suite needs no
# dataset. With ASAN=1 the specs run inside the sanitized `recur` program (stock lua5.4 cannot
# load a sanitized module); otherwise they run in Debian's lua5.4 through require "recur".
set -u
build=${1:-build}
[ $# -gt 0 ] && shift
passed=0
failed=0
skipped=0
log=$(mktemp)
export RECUR_BUILD="$build"
export LSAN_OPTIONS="suppressions=$(pwd)/tools/lsan.supp:print_suppressions=0"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
if [ "${ASAN:-0}" = 1 ]; then
  runner="$build/recur /usr/bin/busted"
else
  runner="lua5.4 /usr/bin/busted"
  export LUA_CPATH="$(pwd)/$build/?.so;;"
fi
export RECUR_BIN="$(pwd)/$build/recur"

if [ $# -eq 0 ]; then
  for t in "$build"/tests/*; do [ -x "$t" ] && set -- "$@" "$(basename "$t")"; done
  for spec in tests/*_spec.lua; do [ -f "$spec" ] && set -- "$@" "$spec"; done
fi

run_c() {
  t="$build/tests/$1"
  if [ ! -x "$t" ]; then
    echo "FAIL $t: not built"
    failed=$((failed + 1))
    return
  fi
  out=$("$t" 2>&1)
  rc=$?
  line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n 1)
  p=$(echo "$line" | awk '{print $1}')
  f=$(echo "$line" | awk '{print $3}')
  [ -n "$p" ] || { p=0; f=1; }
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$f" -ne 0 ]; then printf 'FAIL %s (exit %s)\n%s\n' "$t" "$rc" "$out"; fi
  echo "c test $1: $p passed, $f failed"
}

run_spec() {
  spec=$1
  if [ ! -f "$spec" ]; then
    echo "FAIL $spec: no such spec"
    failed=$((failed + 1))
    return
  fi
  $runner -o TAP "$spec" >"$log" 2>&1
  rc=$?
  s=$(grep -c '^ok .*# SKIP' "$log")
  p=$(($(grep -c '^ok ' "$log") - s))
  f=$(grep -c '^not ok ' "$log")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p))
  failed=$((failed + f))
  skipped=$((skipped + s))
  if [ "$f" -ne 0 ]; then echo "FAIL $spec (exit $rc)"; grep -v '^ok ' "$log" | head -n 80; fi
  if [ "$s" -ne 0 ]; then echo "SKIPPED in $spec:"; grep '^ok .*# SKIP' "$log"; fi
  echo "spec $spec: $p passed, $f failed, $s skipped"
}

for t in "$@"; do
  case "$t" in
    *.lua) run_spec "$t" ;;
    *) run_c "$t" ;;
  esac
done
rm -f "$log"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$skipped" -eq 0 ]
