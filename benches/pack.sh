#!/usr/bin/env bash
# Compares `spate pack` with `tar -cf - DIR | zstd -T0 -3` (and gzip, and pigz when installed) on a tree of
# compressible text, warm cache, and prints times, ratios and archive sizes.
# Commands run in interleaved rounds (benches/compare.py; ROUNDS and RUNS set them).
#
#   bash benches/pack.sh [DATA_DIR] [FILES]
#
# Defaults: /tmp/spate-bench, 20000 text files (about 450 MB; benches/gen_text.py).
# Needs: hyperfine, GNU tar, zstd, gzip, python3. A smoke run: bash benches/pack.sh /tmp/x 200
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-/tmp/spate-bench}
files=${2:-20000}
repo=$PWD
python3 benches/gen_text.py "$data" "$files"
cargo build --release -q
spate=$PWD/target/release/spate
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cd "$data"
compare() { python3 "$repo/benches/compare.py" "$@"; }
size() { stat -c %s "$1"; }

echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "tree: $(find text -type f | wc -l) files, $(du -sb text | cut -f1) bytes; $(zstd --version)"
compare "pack, zstd, warm cache" \
  "$spate pack -q -o $out/spate.tar.zst text" \
  "$spate pack -q --level 3 -o $out/spate3.tar.zst text" \
  "bash -c 'tar -cf - text | zstd -T0 -3 -q -o $out/peer.tar.zst -f'"
echo "sizes: spate $(size $out/spate.tar.zst), spate --level 3 $(size $out/spate3.tar.zst)," \
  "tar|zstd -3 $(size $out/peer.tar.zst) bytes"
python3 -c "import sys; a,b,c=map(int,sys.argv[1:]); print(f'  spate/peer size: {a/c:.4f} (--level 3: {b/c:.4f})')" \
  "$(size $out/spate.tar.zst)" "$(size $out/spate3.tar.zst)" "$(size $out/peer.tar.zst)"
# pigz (apt-get install pigz) is the parallel peer, when installed.
pigz_cmd=()
if command -v pigz >/dev/null; then
  pigz_cmd=("bash -c 'tar -cf - text | pigz -6 > $out/pigz.tar.gz'")
fi
compare "pack, gzip, warm cache" --runs 2 \
  "$spate pack -q -o $out/spate.tar.gz text" \
  "bash -c 'tar -cf - text | gzip -6 > $out/peer.tar.gz'" \
  "${pigz_cmd[@]}"
echo "sizes: spate $(size $out/spate.tar.gz), tar|gzip $(size $out/peer.tar.gz)${pigz_cmd:+,\
 tar|pigz $(size $out/pigz.tar.gz)} bytes"

if "$spate" unpack --help >/dev/null 2>&1; then
  rm -rf "$out/u1" "$out/u2"; mkdir -p "$out/u1" "$out/u2"
  compare "unpack, zstd, warm cache" \
    --prepare "rm -rf $out/u1/text $out/u2/text" \
    "$spate unpack $out/peer.tar.zst -C $out/u1" \
    "bash -c 'zstd -dc $out/peer.tar.zst | tar -xf - -C $out/u2'"
fi
