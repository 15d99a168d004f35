#!/usr/bin/env bash
# Compares `spate pack` with `tar -cf - DIR | zstd -T0 -3` (and gzip, and pigz when installed) on a tree of
# compressible text, warm cache, and prints times, ratios and archive sizes.
# Commands run in interleaved rounds (benches/compare.py; ROUNDS and RUNS set them).
#
#   bash benches/pack.sh [DATA_DIR] [FILES]
#   bash benches/pack.sh --corpus DIR [DIR...]
#
# Defaults: /tmp/spate-bench, 20000 text files (about 450 MB; benches/gen_text.py).
# --corpus compares zstd at level 3 only, on trees nobody here generated (/usr/lib,
# /usr/share, ~/.cargo/registry/src): `spate pack -C PARENT NAME` against
# `tar -C PARENT -cf - NAME | zstd -T0 -3`, both storing the same names, and prints
# each archive's size and spate's size relative to the peer's. A default must stay
# within 1% of the peer's size on every one of them. spate stores each directory's
# entries sorted by name, tar in directory order, which alone moves the size by a few
# percent on real trees; `tar --sort=name | zstd -T0 -3` is timed too, and is the
# like-for-like size reference for the compression itself.
# Both modes also time the indexed .tar.zst (the default) against `--no-index` (the plain
# single stream), and print how much of the archive the index (the table of contents and
# the seek table, benches/index_size.py) takes.
# SPATE=path/to/spate uses that binary instead of building one.
# Needs: hyperfine, GNU tar, zstd, gzip, python3. A smoke run: bash benches/pack.sh /tmp/x 200
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --corpus ]; then
  shift
  [ $# -gt 0 ] || { echo "usage: bash benches/pack.sh --corpus DIR [DIR...]" >&2; exit 2; }
  [ -n "${SPATE:-}" ] || cargo build --release -q
  spate=${SPATE:-$PWD/target/release/spate}
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
  echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
  echo "$(zstd --version); $(tar --version | head -1)"
  for corpus in "$@"; do
    corpus=$(realpath "$corpus")
    parent=$(dirname "$corpus") name=$(basename "$corpus")
    echo "corpus: $corpus: $(find "$corpus" -type f | wc -l) files, $(du -sb "$corpus" | cut -f1) bytes"
    python3 benches/compare.py "pack $corpus, zstd -3, warm cache" \
      "$spate pack -q -o $out/spate.tar.zst -C $parent $name" \
      "$spate pack -q --no-index -o $out/plain.tar.zst -C $parent $name" \
      "bash -c 'tar -C $parent -cf - $name | zstd -T0 -3 -q -o $out/peer.tar.zst -f'" \
      "bash -c 'tar -C $parent --sort=name -cf - $name | zstd -T0 -3 -q -o $out/sorted.tar.zst -f'"
    a=$(stat -c %s "$out/spate.tar.zst") b=$(stat -c %s "$out/peer.tar.zst") c=$(stat -c %s "$out/sorted.tar.zst")
    d=$(stat -c %s "$out/plain.tar.zst")
    python3 -c "import sys; a,b,c,d=map(int,sys.argv[1:]); print(f'  sizes: spate {a}, spate --no-index {d}, tar|zstd -T0 -3 {b}, tar --sort=name|zstd -T0 -3 {c} bytes;'
      f' spate/peer {(a/b-1)*100:+.2f}%, spate/sorted peer {(a/c-1)*100:+.2f}%, spate/--no-index {(a/d-1)*100:+.2f}%')" "$a" "$b" "$c" "$d"
    python3 benches/index_size.py "$out/spate.tar.zst"
    rm -f "$out"/*.tar.zst
  done
  exit 0
fi
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
compare "pack, zstd (level 3), warm cache" \
  "$spate pack -q -o $out/spate.tar.zst text" \
  "$spate pack -q --no-index -o $out/plain.tar.zst text" \
  "bash -c 'tar -cf - text | zstd -T0 -3 -q -o $out/peer.tar.zst -f'"
echo "sizes: spate $(size $out/spate.tar.zst), spate --no-index $(size $out/plain.tar.zst), tar|zstd -3 $(size $out/peer.tar.zst) bytes"
python3 -c "import sys; a,b,c=map(int,sys.argv[1:]); print(f'  spate/peer size: {a/c:.4f}, --no-index/peer: {b/c:.4f}')" \
  "$(size $out/spate.tar.zst)" "$(size $out/plain.tar.zst)" "$(size $out/peer.tar.zst)"
python3 "$repo/benches/index_size.py" "$out/spate.tar.zst"
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
