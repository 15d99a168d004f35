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
#
# Wall-time noise on a shared machine (±10-30% a round here) hides 1%, so the cost is
# also measured directly: the CPU time the sampling and progress-line threads used
# (each reads its own CLOCK_THREAD_CPUTIME_ID when it ends; the JSON's
# cpu.instruments_s), as a share of the job's CPU time and of its wall time; and the
# system calls each build makes (strace -f -c, one run of each build per job after
# the rounds), the default build's extra ones per second of the job. What this does
# not separate: the one relaxed atomic add per completed operation in the I/O thread
# (it shows only in the CPU per MB of the two builds).
# Needs: python3, script (util-linux), strace.
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

# System calls of one run of each build per job, counted by strace (which slows both
# alike; only the counts are used).
for i in "${!jobs[@]}"; do
  IFS='|' read -r name opts <<< "${jobs[$i]}"
  for build in base default; do
    bin=$baseline extra=-q
    [ "$build" = default ] && bin=$default extra="--report $out/r.$i.html"
    TERM=xterm-256color script -qec "strace -f -c -o $out/strace.$build.$i $bin bench --json \
      --size $size --loops 1 $opts $extra $dir > $out/strace.$build.$i.json" \
      "$out/tty.strace" > /dev/null
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
print("| job | sampler + progress line CPU per run | of the job's CPU | of its wall time "
      "| system calls besides the I/O, baseline / default | extra calls per second |")
print("|---|---|---|---|---|---|")
for i, spec in enumerate(jobs):
    name = spec.split("|")[0]
    runs = [json.load(open(f"{out}/default.{i}.{r}.json"))["jobs"][0] for r in range(1, rounds + 1)]
    # The run reported (the best of the loops) carries its own instruments' CPU.
    cost = statistics.median(j["cpu"]["instruments_s"] for j in runs)
    of_cpu = statistics.median(j["cpu"]["instruments_s"] / max(j["cpu"]["user_s"] + j["cpu"]["system_s"], 1e-9)
                               for j in runs)
    of_wall = statistics.median(j["cpu"]["instruments_s"] / j["elapsed_s"] for j in runs)

    def calls(build):
        # strace -c's rows: "% time, seconds, usecs/call, calls, [errors,] syscall";
        # the I/O itself (io_uring_enter, pread64, ...) left out: a timed job makes as
        # many as the disk allows, which differs run to run.
        io = {"io_uring_enter", "pread64", "pwrite64", "fsync", "fdatasync"}
        n = 0
        for line in open(f"{out}/strace.{build}.{i}").read().splitlines():
            fields = line.split()
            if len(fields) in (5, 6) and fields[3].isdigit() and fields[-1] not in io | {"total"}:
                n += int(fields[3])
        return n

    b, d = calls("base"), calls("default")
    secs = json.load(open(f"{out}/strace.default.{i}.json"))["jobs"][0]["elapsed_s"]
    print(f"| {name} | {cost * 1e3:.2f} ms | {of_cpu * 100:.2f}% | {of_wall * 100:.3f}% | "
          f"{b} / {d} | {(d - b) / secs:.0f} |")

print()
print("MB/s of every round (baseline / default):")
for i, spec in enumerate(jobs):
    name = spec.split("|")[0]
    pairs = [(figures(f"{out}/base.{i}.{r}.json")[0], figures(f"{out}/default.{i}.{r}.json")[0])
             for r in range(1, rounds + 1)]
    print(f"  {name}: " + "  ".join(f"{a:.0f}/{b:.0f}" for a, b in pairs))
PY
