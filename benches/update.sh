#!/usr/bin/env bash
# `spate hash --update` against a full `spate hash --json` of the same tree (the hash
# benchmark's 30,000-file small tree), warm and cold, plus the 1%-modified case and the
# peak RSS of a 1,000,000-line OLD. Prints medians and ratios (benches/compare.py: the
# first command is the base, "0.05x" means 5% of its time).
#
#   bash benches/update.sh [DATA_DIR] [FILES]
#
# Defaults: /tmp/spate-bench, 30000 files. Needs hyperfine, python3, /usr/bin/time.
# The tree is never modified (other benchmarks share it): "1% modified" moves the
# recorded mtime of 1% of OLD's records instead, which is what spate compares, so
# exactly those files are read. Cold runs drop the page cache (root only).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-/tmp/spate-bench}
files=${2:-30000}
python3 benches/gen_tree.py "$data" "$files" 1048576
cargo build --release -q
spate=$PWD/target/release/spate
repo=$PWD
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cd "$data"
compare() { python3 "$repo/benches/compare.py" "$@"; }

echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (a shared machine: figures are noisy)"
"$spate" hash -q --json -o "$out/old.json" small
# 1% of the records (every 100th) with another mtime: those files are read again.
python3 - "$out/old.json" "$out/old-1pct.json" "$out/changed.txt" <<'PY'
import json, sys
src, dst, listing = sys.argv[1:]
with open(src) as f, open(dst, "w") as o, open(listing, "w") as l:
    for i, line in enumerate(f):
        rec = json.loads(line)
        if i % 100 == 0:
            rec["mtime_ns"] += 1
            l.write(rec["path"] + "\0")
        o.write(json.dumps(rec, separators=(",", ":"), sort_keys=True) + "\n")
PY
full="$spate hash -q --json -o $out/full.json small"
unchanged="$spate hash -q --update $out/old.json small -o $out/new.json"
onepct="$spate hash -q --update $out/old-1pct.json small -o $out/new1.json"
# Reading the 1% alone, through the same readers: the cost the 1% case adds.
readonly_1pct="bash -c 'xargs -0 $spate hash -q --json < $out/changed.txt > /dev/null'"
compare "unchanged tree, warm cache: full hash --json vs --update" "$full" "$unchanged"
compare "1% modified, warm cache" "$unchanged" "$readonly_1pct" "$onepct"
echo "  (target: the third within 1.5x of the first two added)"

if [ -w /proc/sys/vm/drop_caches ]; then
  drop="sync; echo 3 > /proc/sys/vm/drop_caches"
  compare "unchanged tree, cold cache (page cache dropped before each run)" \
    --runs "${COLD_RUNS:-1}" --prepare "$drop" "$full" "$unchanged"
fi

echo "== peak RSS, --update with a 1,000,000-line OLD (30,000 real records + padding)"
python3 "$repo/benches/gen_old.py" "$out/old.json" 1000000 "$out/old-1m.json"
/usr/bin/time -v "$spate" hash -q --update "$out/old-1m.json" small -o "$out/new-1m.json" --stats \
  2>&1 | grep -E 'update:|Maximum resident|Elapsed'
