#!/usr/bin/env bash
# What `spate bench`'s own instruments cost a job: the default build (a sampling thread
# reading the job's byte counter every 100 ms, one relaxed atomic add per completed
# operation feeding it, the live progress line on a terminal, the report drawn after
# the run) against a build with the `bench-baseline` feature, which has none of them
# during a job (src/bench/samples.rs). The issue's target: < 1% of a job's throughput.
#
#   bash benches/bench_overhead.sh [DIR]
#
# DIR (default /var/tmp/spate-overhead) holds the test files. ROUNDS=7 rounds, each
# running both builds once per job, in alternating order (baseline first in odd
# rounds); LOOPS=3 runs of a job per invocation (`--loops`, the median of them is the
# round's figure); SIZE=1G test files. Short run: ROUNDS=3 LOOPS=1 SIZE=256M.
# ONLY=direct runs the jobs whose name matches. Both builds run under `script`, so
# stderr is a terminal for both and the default build draws its progress line (the
# baseline draws none); the default build also writes `--report r.html`.
#
# Jobs where an overhead would show most: cached 4 KiB random reads (the highest
# operation rate, so the most counter adds per second), cached 1 MiB sequential reads
# (the highest byte rate, least disk noise), and a direct 4 KiB Q32 random read (the
# disk's own rate, as the preset's RND4K Q32T1).
#
# Prints per job the median MB/s of each build, the ratio default/baseline of the
# medians, the median and range of the per-round ratios (the run-to-run spread), and
# CPU per MB moved (getrusage of the whole process, sampler included).
# Needs: python3, script (util-linux).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/var/tmp/spate-overhead}
rounds=${ROUNDS:-7}
loops=${LOOPS:-3}
size=${SIZE:-1G}
# Both builds in the one target directory: the feature changes only spate's own
# crate, whose artifacts cargo keeps apart per feature set, so after the first time
# both are fresh (a --target-dir of its own would rebuild every dependency).
cargo build --release -q --features bench-baseline
mkdir -p target/baseline
cp target/release/spate target/baseline/spate
cargo build --release -q
default=$PWD/target/release/spate
baseline=$PWD/target/baseline/spate
mkdir -p "$dir"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# name | spate bench options (besides --size, --loops, --json)
jobs=(
  "RND4K Q32 cached|--rw randread --bs 4k --iodepth 32 --cached --runtime 10"
  "SEQ1M Q8 cached|--rw read --bs 1M --iodepth 8 --cached --runtime 10"
  "RND4K Q32 direct|--rw randread --bs 4k --iodepth 32 --direct --runtime 3"
)
if [ -n "${ONLY:-}" ]; then
  selected=()
  for j in "${jobs[@]}"; do [[ ${j%%|*} =~ $ONLY ]] && selected+=("$j"); done
  jobs=("${selected[@]}")
fi

run() { # build job-options json-file tty-file [extra options]
  local bin=$1 opts=$2 json=$3 tty=$4
  shift 4
  # A terminal on stderr, as a user at a shell has; stdout goes to the JSON file.
  TERM=xterm-256color script -qec \
    "$bin bench --json --size $size --loops $loops $opts $* $dir > $json" "$tty" > /dev/null
}

echo "machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg), $(df -T "$dir" | awk 'NR==2 {print $2, $1}')"
echo "spate $($default --version | cut -d' ' -f2); size $size, $loops loops per run, $rounds rounds"
for round in $(seq "$rounds"); do
  for i in "${!jobs[@]}"; do
    IFS='|' read -r name opts <<< "${jobs[$i]}"
    base=(run "$baseline" "$opts" "$out/base.$i.$round.json" "$out/tty.base.$i.$round" -q)
    dflt=(run "$default" "$opts" "$out/default.$i.$round.json" "$out/tty.default.$i.$round"
      --report "$out/r.$i.html")
    if (( round % 2 )); then "${base[@]}"; "${dflt[@]}"; else "${dflt[@]}"; "${base[@]}"; fi
  done
done

python3 - "$out" "$rounds" "${jobs[@]}" <<'PY'
import json, os, statistics, sys
out, rounds, jobs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]

def bar_in(tty):
    return b"iB/s" in open(tty, "rb").read()

def figures(path):
    j = json.load(open(path))["jobs"][0]
    r = j["read"]
    # The median of the loops, and the CPU per MB of the run reported (the best).
    cpu = j["cpu"]["user_s"] + j["cpu"]["system_s"]
    return j["loops"]["median_mb_s"], cpu / (r["bytes"] / 1e6) * 1e6

print()
print("| job | baseline MB/s | default MB/s | default/baseline | per-round ratios: median (min-max) "
      "| CPU µs/MB baseline / default | progress line drawn |")
print("|---|---|---|---|---|---|---|")
for i, spec in enumerate(jobs):
    name = spec.split("|")[0]
    b = [figures(f"{out}/base.{i}.{r}.json") for r in range(1, rounds + 1)]
    d = [figures(f"{out}/default.{i}.{r}.json") for r in range(1, rounds + 1)]
    ratios = [y[0] / x[0] for x, y in zip(b, d)]
    bm, dm = statistics.median(x[0] for x in b), statistics.median(x[0] for x in d)
    bc, dc = statistics.median(x[1] for x in b), statistics.median(x[1] for x in d)
    # The line shows a rate (its "{binary_bytes_per_sec}", e.g. "1.21 GiB/s") on the
    # terminal; the baseline must show nothing.
    drawn = all(bar_in(f"{out}/tty.default.{i}.{r}") for r in range(1, rounds + 1))
    silent = not any(bar_in(f"{out}/tty.base.{i}.{r}") for r in range(1, rounds + 1))
    print(f"| {name} | {bm:.1f} | {dm:.1f} | {dm / bm:.3f} | {statistics.median(ratios):.3f} "
          f"({min(ratios):.3f}-{max(ratios):.3f}) | {bc:.0f} / {dc:.0f} | "
          f"{'default yes' if drawn else 'default NO'}, {'baseline no' if silent else 'baseline YES'} |")
print()
print("MB/s of every round (baseline / default):")
for i, spec in enumerate(jobs):
    name = spec.split("|")[0]
    pairs = [(figures(f"{out}/base.{i}.{r}.json")[0], figures(f"{out}/default.{i}.{r}.json")[0])
             for r in range(1, rounds + 1)]
    print(f"  {name}: " + "  ".join(f"{a:.0f}/{b:.0f}" for a, b in pairs))
PY
