#!/usr/bin/env bash
# Compares `spate check` with `spate hash` on the same tree and with `b3sum -c` /
# `sha256sum -c` on the equivalent manifests; prints each median and its ratio to the
# first command of its group (a peer's "2.50x" means spate check was 2.5 times faster).
# Commands run in interleaved rounds (benches/compare.py; ROUNDS and RUNS set them).
#
#   bash benches/check.sh [DATA_DIR] [FILES] [BIG_BYTES]
#
# Defaults: /tmp/spate-bench, 30000 files of 1 KiB-512 KiB, two 1 GiB files.
# Needs: hyperfine, b3sum, coreutils, python3. A smoke run: bash benches/check.sh /tmp/x 200 4M
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-/tmp/spate-bench}
files=${2:-30000}
big=${3:-1073741824}
repo=$PWD
python3 benches/gen_tree.py "$data" "$files" "$big"
cargo build --release -q
spate=$PWD/target/release/spate
out=$(mktemp -d)
cd "$data"

compare() { python3 "$repo/benches/compare.py" "$@"; }

echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "spate $($spate --version | cut -d' ' -f2), $(b3sum --version), $(sha256sum --version | head -1)"
for t in small big; do
  "$spate" hash -q -o "$out/$t.b3" $t
  "$spate" hash -q -a sha256 -o "$out/$t.sha256" $t
  cp "$out/$t.b3" "$out/$t.sha256" .
done
echo "manifests: $(wc -l < small.b3) lines (small), $(wc -l < big.b3) (big)"

compare "small files, BLAKE3, warm cache" \
  "$spate check -q small.b3" \
  "$spate hash -q small" \
  "b3sum -c --quiet small.b3"
compare "small files, SHA-256, warm cache" \
  "$spate check -q small.sha256" \
  "$spate hash -q -a sha256 small" \
  "sha256sum -c --quiet small.sha256"
compare "two big files, BLAKE3, warm cache" \
  "$spate check -q big.b3" \
  "$spate hash -q big" \
  "b3sum -c --quiet big.b3"
if [ -w /proc/sys/vm/drop_caches ]; then
  drop="sync; echo 3 > /proc/sys/vm/drop_caches"
  compare "small files, BLAKE3, cold cache" --prepare "$drop" \
    "$spate check -q small.b3" \
    "$spate hash -q small" \
    "b3sum -c --quiet small.b3"
fi
rm -f small.b3 small.sha256 big.b3 big.sha256
rm -rf "$out"
