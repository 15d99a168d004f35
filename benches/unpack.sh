#!/usr/bin/env bash
# Compares `spate unpack` of an indexed .tar.zst (what `spate pack` writes by default:
# frames decompressed on every core, files written by writer threads) with
# `zstd -dc X | tar -x`, on a tmpfs (warm cache) and on an ext4 (or any disk) directory
# (cold: `sync` and drop_caches before every run, and the final `sync` inside the timing
# of every command alike, since what is not written back yet is not written). Also times
# spate with one and two writer threads, and on the same tar stream recompressed as one
# plain zstd stream (no index: the sequential path every other archive takes).
# Commands run in interleaved rounds (benches/compare.py; ROUNDS and RUNS set them); the
# destination is emptied before every run, outside the timing. Each line gives the
# median wall time, its ratio to the peer's, and the mean CPU time (user + system).
#
#   bash benches/unpack.sh [CORPUS...]        default: /usr/share
#
# TMPFS=DIR extracts on that tmpfs (default: one mounted for the run, which needs root);
# EXT4=DIR extracts there for the disk figures (default: a directory under /var/tmp;
# DISK= is the old name). WHERE="tmpfs ext4" picks the file systems (default both).
# The archives are packed by spate from the corpus (zstd level 3, its default) and kept
# on the tmpfs, with a copy of the spate binary (drop_caches would otherwise make spate
# alone read its binary from disk). SPATE=path/to/spate uses that binary instead of
# building one. Needs: hyperfine, GNU tar, zstd, python3, root (mount, drop_caches).
# A smoke run: ROUNDS=1 RUNS=1 bash benches/unpack.sh /usr/share/doc
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
[ -n "${SPATE:-}" ] || cargo build --release -q
built=${SPATE:-$repo/target/release/spate}
corpora=("$@")
[ ${#corpora[@]} -gt 0 ] || corpora=(/usr/share)
where=${WHERE:-tmpfs ext4}

mounted=
if [ -z "${TMPFS:-}" ]; then
  TMPFS=$(mktemp -d /tmp/spate-unpack-tmpfs.XXXXXX)
  mount -t tmpfs -o size=6G tmpfs "$TMPFS"
  mounted=$TMPFS
fi
EXT4=${EXT4:-${DISK:-}}
disk=${EXT4:-$(mktemp -d /var/tmp/spate-unpack-disk.XXXXXX)}
mkdir -p "$disk"
cleanup() {
  rm -rf "${TMPFS:?}"/bench-* "$disk"/bench-*
  if [ -n "$mounted" ]; then umount "$mounted" && rmdir "$mounted"; fi
  [ -n "${EXT4:-}" ] || rmdir "$disk" 2>/dev/null || true
}
trap cleanup EXIT
spate=$TMPFS/bench-spate
cp "$built" "$spate"

echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); $(zstd --version); $(tar --version | head -1)"
echo "disk directory: $disk ($(stat -f -c %T "$disk"))"
for corpus in "${corpora[@]}"; do
  corpus=$(realpath "$corpus")
  parent=$(dirname "$corpus") name=$(basename "$corpus")
  echo "corpus: $corpus: $(find "$corpus" -type f | wc -l) files, $(du -sb "$corpus" | cut -f1) bytes"
  a=$TMPFS/bench-$name.tar.zst plain=$TMPFS/bench-$name-plain.tar.zst
  "$spate" pack -q -o "$a" -C "$parent" "$name"
  zstd -dc -q "$a" | zstd -q -3 -T0 -o "$plain"
  echo "  archive: $(stat -c %s "$a") bytes indexed, $(stat -c %s "$plain") bytes as one stream"
  for w in $where; do
    case $w in
      tmpfs)
        d=$TMPFS/bench-out
        python3 "$repo/benches/compare.py" "unpack $corpus to tmpfs ($d), warm" \
          --prepare "rm -rf $d && mkdir -p $d" \
          "bash -c 'zstd -dc $a | tar -x -C $d'" \
          "$spate unpack -q $a -C $d" \
          "$spate unpack -q --writers 1 $a -C $d" \
          "$spate unpack -q $plain -C $d"
        ;;
      ext4 | disk)
        d=$disk/bench-out
        python3 "$repo/benches/compare.py" "unpack $corpus to $(stat -f -c %T "$disk") ($d), cold, sync timed" \
          --prepare "rm -rf $d && mkdir -p $d && sync && echo 3 > /proc/sys/vm/drop_caches" \
          "bash -c 'zstd -dc $a | tar -x -C $d && sync'" \
          "bash -c '$spate unpack -q $a -C $d && sync'" \
          "bash -c '$spate unpack -q --writers 1 $a -C $d && sync'" \
          "bash -c '$spate unpack -q --writers 2 $a -C $d && sync'" \
          "bash -c '$spate unpack -q $plain -C $d && sync'"
        ;;
      *) echo "WHERE: tmpfs or ext4, not $w" >&2; exit 2 ;;
    esac
    rm -rf "$d"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
