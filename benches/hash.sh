#!/usr/bin/env bash
# Compares `spate hash` with b3sum on the benchmark trees, warm and cold cache, and
# prints ratios (peer median / spate median: > 1 means spate is faster).
#
#   bash benches/hash.sh [DATA_DIR] [FILES] [BIG_BYTES]
#
# Defaults: /tmp/spate-bench, 30000 files of 1 KiB-512 KiB, two 1 GiB files.
# Needs: hyperfine, b3sum, python3, /usr/bin/time (apt-get install hyperfine b3sum time).
# Commands run in interleaved rounds (benches/compare.py; ROUNDS and RUNS set them;
# COLD_RUNS the runs per round with a cold cache). Cold-cache runs drop the page cache
# (root only). A smoke run: bash benches/hash.sh /tmp/x 200 4M
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-/tmp/spate-bench}
files=${2:-30000}
big=${3:-1073741824}
python3 benches/gen_tree.py "$data" "$files" "$big"
cargo build --release -q
spate=$PWD/target/release/spate
repo=$PWD
out=$(mktemp -d)
cd "$data"

compare() { python3 "$repo/benches/compare.py" "$@"; }

echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "spate $($spate --version | cut -d' ' -f2), $(b3sum --version)"
xargs_serial="find small -type f -print0 | xargs -0 b3sum > /dev/null"
xargs_par="find small -type f -print0 | xargs -0 -P2 -n 1000 b3sum > /dev/null"
compare "small files, warm cache" \
  "$spate hash -q small" \
  "$spate hash -q --io threads small" \
  "bash -c '$xargs_serial'" \
  "bash -c '$xargs_par'"
compare "two big files, warm cache" \
  "$spate hash -q big" \
  "$spate hash -q --io threads big" \
  "b3sum big/big0 big/big1"

if [ -w /proc/sys/vm/drop_caches ]; then
  drop="sync; echo 3 > /proc/sys/vm/drop_caches"
  compare "small files, cold cache (page cache dropped before each run)" \
    --runs "${COLD_RUNS:-1}" --prepare "$drop" \
    "$spate hash -q small" "$spate hash -q --io threads small" "bash -c '$xargs_par'"
  compare "two big files, cold cache" --runs "${COLD_RUNS:-1}" --prepare "$drop" \
    "$spate hash -q big" "$spate hash -q --io threads big" "b3sum big/big0 big/big1"
fi

echo "== peak RSS"
for t in small big; do
  for io in uring threads; do
    rss=$(/usr/bin/time -v "$spate" hash -q --io $io $t 2>&1 >/dev/null | awk -F: '/Maximum resident/ {print $2}')
    echo "  $t --io $io: ${rss// /} KiB"
  done
done
rm -rf "$out"
