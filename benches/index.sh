#!/usr/bin/env bash
# What the index of a .tar.zst buys: `spate list` against `tar -tvf` of the same file,
# and one member from the middle (`spate unpack X M`) against `tar -xf X M`, on an
# archive of real text nobody here generated (by default /usr/share/doc and
# /usr/share/man: about 29,000 members). Warm cache; commands run in interleaved rounds
# (benches/compare.py; ROUNDS and RUNS set them). The first command of each comparison
# is spate's, so the peer's line shows how many times longer it took.
#
#   bash benches/index.sh [DIR...]
#
# SPATE=path/to/spate uses that binary instead of building one.
# Needs: hyperfine, GNU tar, zstd, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
[ $# -gt 0 ] || set -- /usr/share/doc /usr/share/man
[ -n "${SPATE:-}" ] || cargo build --release -q
spate=${SPATE:-$repo/target/release/spate}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
compare() { python3 "$repo/benches/compare.py" "$@"; }

# Stored as given, without the leading `/`, as GNU tar stores them.
names=()
for dir in "$@"; do names+=("$(realpath "$dir" | sed 's|^/||')"); done
"$spate" pack -q -C / -o "$out/x.tar.zst" "${names[@]}"
x=$out/x.tar.zst
echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "$(zstd --version); $(tar --version | head -1)"
echo "archive: $* -> $(stat -c %s "$x") bytes, $("$spate" list "$x" | wc -l) members"

compare "list: spate list X vs tar -tvf X" \
  "$spate list $x" \
  "tar -tvf $x"

# A regular file half way through the archive, by member order.
member=$("$spate" list --json "$x" | python3 -c '
import json, re, sys
# A name the command line needs no quoting for.
files = [o["path"] for o in map(json.loads, sys.stdin)
         if o["type"] == "file" and re.fullmatch(r"[\w./+-]+", o.get("path", ""))]
print(files[len(files) // 2])')
echo "member: $member"
mkdir -p "$out/u1" "$out/u2"
# --overwrite: every run after the first replaces the file, as tar does by default.
compare "one member from the middle: spate unpack X M vs tar -xf X M" \
  "$spate unpack --overwrite $x -C $out/u1 $member" \
  "tar -xf $x -C $out/u2 $member"
cmp "$out/u1/$member" "$out/u2/$member"
