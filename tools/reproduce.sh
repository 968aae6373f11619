#!/bin/sh
# `make reproduce`: runs every post script's quick profile (scripts/posts/*.lua), printing
# its tables, then `make report`'s tools/report.lua. Order: the reference's section of each
# post, read from the script (a `-- section: N` line, else its first `section = N`), then the
# file name; a script that names no section runs last. A failing script does not stop the
# others: the failures are listed at the end and the exit status is 1.
# usage: tools/reproduce.sh BUILD_DIR [PROFILE_FLAG]   (default --quick)
set -u
build=${1:-build}
profile=${2:---quick}
bin="$build/recur"
[ -x "$bin" ] || { echo "reproduce: $bin is not built (make all)" >&2; exit 1; }

order=$(mktemp)
trap 'rm -f "$order"' EXIT
for f in scripts/posts/*.lua; do
  [ -f "$f" ] || continue
  s=$(sed -n -e 's/^-- *section: *\([0-9][0-9]*\).*/\1/p' "$f" | head -n 1)
  [ -n "$s" ] || s=$(sed -n -e 's/.*section *= *\([0-9][0-9]*\).*/\1/p' "$f" | head -n 1)
  [ -n "$s" ] || s=9999
  printf '%s %s\n' "$s" "$f" >> "$order"
done

failed=""
count=0
if [ ! -s "$order" ]; then
  echo "reproduce: no post scripts under scripts/posts/"
fi
for f in $(sort -k1,1n -k2,2 "$order" | awk '{print $2}'); do
  count=$((count + 1))
  echo "=== $f $profile"
  if ! "$bin" "$f" "$profile"; then
    echo "reproduce: $f failed" >&2
    failed="$failed $f"
  fi
done

"$bin" tools/report.lua || failed="$failed tools/report.lua"

if [ -n "$failed" ]; then
  echo "reproduce: $count scripts run; failed:$failed" >&2
  exit 1
fi
echo "reproduce: $count scripts run, none failed"
