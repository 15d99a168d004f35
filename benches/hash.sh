#!/usr/bin/env bash
# Compares `spate hash` with b3sum on the benchmark trees, warm and cold cache, and
# prints ratios (peer median / spate median: > 1 means spate is faster).
#
#   bash benches/hash.sh [DATA_DIR] [FILES] [BIG_BYTES]
#
# Defaults: /tmp/spate-bench, 30000 files of 1 KiB-512 KiB, two 1 GiB files.
# Needs: hyperfine, b3sum, python3, /usr/bin/time (apt-get install hyperfine b3sum time).
# Cold-cache runs drop the page cache (root only). A smoke run: bash benches/hash.sh /tmp/x 200 4M
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-/tmp/spate-bench}
files=${2:-30000}
big=${3:-1073741824}
runs=${RUNS:-5}
python3 benches/gen_tree.py "$data" "$files" "$big"
cargo build --release -q
spate=$PWD/target/release/spate
out=$(mktemp -d)
cd "$data"

ratio() { # json file -> each command's median and its time relative to the first
  # (spate's default); "2.50x" on a peer's line means spate was 2.5 times faster.
  python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
base = r[0]["median"]
for x in r:
    print(f"  {x['median']:8.3f} s  {x['median'] / base:5.2f}x   {x['command']}")
PY
}

bench() { # title, then commands (first is spate default)
  local title=$1; shift
  echo "== $title"
  hyperfine -N --warmup 1 --runs "$runs" --export-json "$out/r.json" "$@" >/dev/null 2>&1 \
    || hyperfine --warmup 1 --runs "$runs" --export-json "$out/r.json" "$@" >/dev/null
  ratio "$out/r.json"
}

echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "spate $($spate --version | cut -d' ' -f2), $(b3sum --version)"
xargs_serial="find small -type f -print0 | xargs -0 b3sum > /dev/null"
xargs_par="find small -type f -print0 | xargs -0 -P2 -n 1000 b3sum > /dev/null"
bench "small files, warm cache" \
  "$spate hash -q small" \
  "$spate hash -q --io threads small" \
  "bash -c '$xargs_serial'" \
  "bash -c '$xargs_par'"
bench "two big files, warm cache" \
  "$spate hash -q big" \
  "$spate hash -q --io threads big" \
  "b3sum big/big0 big/big1"

if [ -w /proc/sys/vm/drop_caches ]; then
  drop="sync; echo 3 > /proc/sys/vm/drop_caches"
  echo "== cold cache (page cache dropped before each run)"
  hyperfine --runs 3 --prepare "$drop" --export-json "$out/c.json" \
    "$spate hash -q small" "$spate hash -q --io threads small" "bash -c '$xargs_par'" >/dev/null
  ratio "$out/c.json"
  hyperfine --runs 3 --prepare "$drop" --export-json "$out/c.json" \
    "$spate hash -q big" "$spate hash -q --io threads big" "b3sum big/big0 big/big1" >/dev/null
  ratio "$out/c.json"
fi

echo "== peak RSS"
for t in small big; do
  for io in uring threads; do
    rss=$(/usr/bin/time -v "$spate" hash -q --io $io $t 2>&1 >/dev/null | awk -F: '/Maximum resident/ {print $2}')
    echo "  $t --io $io: ${rss// /} KiB"
  done
done
rm -rf "$out"
