#!/bin/sh
# Runs every C test and every busted spec; prints each failure and ends with one line
# "N passed, N failed" that counts them all. Usage: run_tests.sh BUILD_DIR
# With ASAN=1 the specs run inside the sanitized `recur` program (stock lua5.4 cannot load
# a sanitized module); otherwise they run in Debian's lua5.4 through require "recur".
set -u
build=${1:-build}
passed=0
failed=0
log=$(mktemp)
export RECUR_BUILD="$build"
export LSAN_OPTIONS="suppressions=$(pwd)/tools/lsan.supp:print_suppressions=0"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
for t in "$build"/tests/*; do
  [ -x "$t" ] || continue
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
  echo "c test $(basename "$t"): $p passed, $f failed"
done
if [ "${ASAN:-0}" = 1 ]; then
  runner="$build/recur /usr/bin/busted"
else
  runner="lua5.4 /usr/bin/busted"
  export LUA_CPATH="$(pwd)/$build/?.so;;"
fi
export RECUR_BIN="$(pwd)/$build/recur"
for spec in tests/*_spec.lua; do
  [ -f "$spec" ] || continue
  $runner -o TAP "$spec" >"$log" 2>&1
  rc=$?
  p=$(grep -c '^ok ' "$log")
  f=$(grep -c '^not ok ' "$log")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$f" -ne 0 ]; then echo "FAIL $spec (exit $rc)"; grep -v '^ok ' "$log" | head -n 80; fi
  echo "spec $spec: $p passed, $f failed"
done
rm -f "$log"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
