#!/usr/bin/env bash
# Compares `spate unpack` of an indexed .tar.zst (what `spate pack` writes by default:
# frames decompressed on every core, files written by writer threads) with
# `zstd -dc X | tar -x`, on a tmpfs and on the disk, warm cache. Also times spate on the
# same tar stream recompressed as one plain zstd stream (no index: the sequential path
# every other archive takes).
# Commands run in interleaved rounds (benches/compare.py; ROUNDS and RUNS set them); the
# destination is emptied before every run, outside the timing.
#
#   bash benches/unpack.sh [CORPUS...]        default: /usr/share
#
# TMPFS=DIR extracts on that tmpfs (default: one mounted for the run, which needs root);
# DISK=DIR extracts there for the disk figures (default: a directory under /var/tmp).
# The archives are packed by spate from the corpus (zstd level 3, its default) and kept
# on the tmpfs. SPATE=path/to/spate uses that binary instead of building one.
# Needs: hyperfine, GNU tar, zstd, python3. A smoke run: ROUNDS=1 RUNS=1 bash benches/unpack.sh /usr/share/doc
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
[ -n "${SPATE:-}" ] || cargo build --release -q
spate=${SPATE:-$repo/target/release/spate}
corpora=("$@")
[ ${#corpora[@]} -gt 0 ] || corpora=(/usr/share)

mounted=
if [ -z "${TMPFS:-}" ]; then
  TMPFS=$(mktemp -d /tmp/spate-unpack-tmpfs.XXXXXX)
  mount -t tmpfs -o size=6G tmpfs "$TMPFS"
  mounted=$TMPFS
fi
disk=${DISK:-$(mktemp -d /var/tmp/spate-unpack-disk.XXXXXX)}
cleanup() {
  rm -rf "${TMPFS:?}"/bench-* "$disk"/bench-*
  if [ -n "$mounted" ]; then umount "$mounted" && rmdir "$mounted"; fi
  [ -n "${DISK:-}" ] || rmdir "$disk" 2>/dev/null || true
}
trap cleanup EXIT

echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); $(zstd --version); $(tar --version | head -1)"
for corpus in "${corpora[@]}"; do
  corpus=$(realpath "$corpus")
  parent=$(dirname "$corpus") name=$(basename "$corpus")
  echo "corpus: $corpus: $(find "$corpus" -type f | wc -l) files, $(du -sb "$corpus" | cut -f1) bytes"
  a=$TMPFS/bench-$name.tar.zst plain=$TMPFS/bench-$name-plain.tar.zst
  "$spate" pack -q -o "$a" -C "$parent" "$name"
  zstd -dc -q "$a" | zstd -q -3 -T0 -o "$plain"
  echo "  archive: $(stat -c %s "$a") bytes indexed, $(stat -c %s "$plain") bytes as one stream"
  for where in tmpfs disk; do
    case $where in tmpfs) d=$TMPFS/bench-out ;; disk) d=$disk/bench-out ;; esac
    python3 "$repo/benches/compare.py" "unpack $corpus to $where ($d)" \
      --prepare "rm -rf $d && mkdir -p $d" \
      "bash -c 'zstd -dc $a | tar -x -C $d'" \
      "$spate unpack -q $a -C $d" \
      "$spate unpack -q $plain -C $d"
    rm -rf "$d"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
