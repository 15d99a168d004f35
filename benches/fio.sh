#!/usr/bin/env bash
# Compares `spate bench` with fio (--ioengine=io_uring) job by job, with the same rw,
# bs, iodepth, size, runtime and direct settings, and prints both figures side by side
# with their ratio (spate / fio: 1.00 = agreement). Also runs `spate bench --io threads`
# to show what io_uring buys at queue depth 8 and 32, and fio with `depth` psync threads
# (--ioengine=psync --numjobs=depth) to show the same comparison in fio's own terms.
#
#   bash benches/fio.sh [DIR] [SIZE] [RUNTIME]
#
# Defaults: /tmp/spate-fio, 2G, 10 (seconds; each job also ends after one pass over the
# file, as fio does without time_based). ROUNDS=3 repeats the whole set, interleaved,
# and prints medians (this VM's speed drifts over seconds; interleaving spreads it).
# Both tools use a new test file of the same size in DIR for every run (fio:
# DIR/fio-test, spate: a temporary file), laid out with data before read jobs, and
# drop its pages from the page cache before reading (fio's default invalidate=1).
# SETTLE=3: seconds to pause before every run (see settle below).
# PRESET=1 adds the preset rows (direct); PAIRS=1 runs only fio and spate uring, and
# prints the operations each kept in flight (IOPS × mean latency; in brackets spate's
# in_flight_mean, over the ring's busy time: an end fsync, which neither tool counts
# as an operation, lowers IOPS × latency by its share of the job's time). fio gets
# iomem_align=4096: page-aligned buffers, as spate's (see run_fio). fio gets
# iomem=shmhuge where huge pages can be reserved (root: vm.nr_hugepages is raised to
# 64 for the run and put back after): spate's buffers are on transparent huge pages,
# and fio's default malloc'd 4 KiB pages made its 1 MiB direct requests go out split
# in two in some runs and not in others (see hugepages below).
# Needs: fio, python3 (apt-get install fio). Smoke run: bash benches/fio.sh /tmp/x 64M 1
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/spate-fio}
size=${2:-2G}
runtime=${3:-10}
rounds=${ROUNDS:-3}
cargo build --release -q
spate=$PWD/target/release/spate
mkdir -p "$dir"
out=$(mktemp -d)

# Huge pages for fio's buffers, as spate's. A block device takes a bounded number of
# segments per request (this VM's virtio disk: 254) and 1 MiB of 4 KiB pages is 256
# unless the page allocator happened to hand out neighbours: fio's SEQ1M Q8T1 direct
# reads ran at 0.9 to 2.0 GB/s from round to round on the same file, by that luck
# alone, and 2.4 to 2.6 GB/s on huge pages every time, as spate's do.
hugepages=/proc/sys/vm/nr_hugepages
had_huge=$(cat "$hugepages" 2>/dev/null || echo)
fio_mem=()
if [ -n "$had_huge" ] && [ "$had_huge" -ge 64 ] 2>/dev/null; then
  fio_mem=(--iomem=shmhuge)
elif [ -n "$had_huge" ] && echo 64 2>/dev/null > "$hugepages" && [ "$(cat "$hugepages")" -ge 64 ]; then
  fio_mem=(--iomem=shmhuge)
else
  echo "note: no huge pages for fio (needs root): its large direct requests may split" >&2
fi
restore() {
  rm -rf "$out" "$dir/fio-test"
  if [ -n "$had_huge" ] && [ "$(cat "$hugepages")" != "$had_huge" ]; then
    echo "$had_huge" > "$hugepages" 2>/dev/null || true
  fi
}
trap restore EXIT

# name | fio --rw | bs | iodepth | direct (0/1) | end fsync (0/1)
jobs=(
  "seq read 1M Q8|read|1M|8|0|0"
  "rand read 4k Q32 direct|randread|4k|32|1|0"
  "seq write 1M Q8 +fsync|write|1M|8|0|1"
)
# PRESET=1 adds the rows of `spate bench`'s default preset as it runs them: direct I/O,
# every write ending with an fsync (CrystalDiskMark's SEQ1M/RND4K tests).
if [ -n "${PRESET:-}" ]; then
  jobs+=(
    "SEQ1M Q8T1 read|read|1M|8|1|0"
    "SEQ1M Q8T1 write|write|1M|8|1|1"
    "SEQ1M Q1T1 read|read|1M|1|1|0"
    "SEQ1M Q1T1 write|write|1M|1|1|1"
    "RND4K Q32T1 write|randwrite|4k|32|1|1"
    "RND4K Q1T1 read|randread|4k|1|1|0"
    "RND4K Q1T1 write|randwrite|4k|1|1|1"
  )
fi
# PAIRS=1 runs only fio (io_uring) and spate (uring), the agreement pair: half the time.
pairs=${PAIRS:-}

# Between runs: write back, then let the file system finish with the blocks the last
# run freed. On this VM's ext4 (mounted with discard), writing right after a large
# file was deleted ran 0.4x-4x the settled speed depending on the journal's timing;
# after a pause fio and spate both land on the same, steady figure.
settle() {
  sync
  sleep "${SETTLE:-3}"
}

# Both tools run pinned to the same CPU (PIN=CPU; PIN= for none). The disk's completion
# interrupts arrive on one CPU here (virtio1-req.0: all on CPU 1), and a tool whose
# submitting thread runs on that CPU gets far less: 4 KiB direct random writes at Q32,
# pinned by hand, ran at 132-204 MB/s on the interrupts' CPU and 306-407 MB/s on the
# other, for fio and spate alike. Left to the scheduler, the two tools landed there
# differently often, and RND4K Q32T1 write came out 1.17-1.30 (spate / fio) in three
# 5- and 6-round runs. The default is the CPU that has taken the fewest of the test
# disk's interrupts (its PCI device's MSI vectors in /proc/interrupts).
quiet_cpu() {
  local src dev sys dev_dir irqs
  src=$(df --output=source "$dir" | tail -1)
  dev=$(basename "$(readlink -f "$src")")
  sys=$(readlink -f "/sys/class/block/$dev")
  [ -e "$sys/partition" ] && sys=$(dirname "$sys")
  dev_dir=$(readlink -f "$sys/device" 2>/dev/null) || return 0
  while [ -n "$dev_dir" ] && [ "$dev_dir" != / ] && [ ! -d "$dev_dir/msi_irqs" ]; do
    dev_dir=$(dirname "$dev_dir")
  done
  [ -d "$dev_dir/msi_irqs" ] || return 0
  irqs=$(ls "$dev_dir/msi_irqs" | tr '\n' ' ')
  awk -v irqs="$irqs" -v cpus="$(nproc)" '
    BEGIN { n = split(irqs, list, " "); for (i = 1; i <= n; i++) want[list[i] ":"] = 1 }
    ($1 in want) { for (c = 0; c < cpus; c++) sum[c] += $(c + 2) }
    END { best = 0; for (c = 1; c < cpus; c++) if (sum[c] < sum[best]) best = c; print best }
  ' /proc/interrupts
}
pin=${PIN-$(quiet_cpu)}
pinned=()
[ -n "$pin" ] && pinned=(taskset -c "$pin")

run_fio() { # rw bs depth direct fsync -> json file
  # A new file every run, as spate's: fio lays it out (and fsyncs it) before a read
  # job, allocates it for a write job. Reusing one file made fio's reads 2.5x slower
  # than spate's here: the VM's host had long evicted that file from its cache while
  # spate's was freshly written.
  local file=$dir/fio-test
  rm -f "$file"
  settle
  # norandommap: random offsets drawn with replacement, as spate draws them and as the
  # job `spate bench --emit-fio` prints says (fio's default visits every block once).
  # iomem_align=4096 (also in that job): buffers on a page, as spate's. Without it fio
  # page-aligns them for direct jobs only; a buffered job's start 16 bytes past a page
  # (malloc's), where the kernel's copy cost fio twice the CPU of spate's (perf:
  # _copy_to_iter 1.53 s against 0.66 s per GiB), and that alone was the 1.30 of
  # spate/fio on buffered sequential reads at Q8.
  "${pinned[@]}" fio --name=spate-cmp --filename="$file" --ioengine=io_uring --rw="$1" --norandommap=1 \
    --iomem_align=4096 "${fio_mem[@]}" \
    --bs="$2" --iodepth="$3" --direct="$4" --end_fsync="$5" --size="$size" \
    --runtime="$runtime" --output-format=json > "$6"
  rm -f "$file"
}

run_fio_psync() { # rw bs depth direct fsync -> json file
  # fio's counterpart of `spate bench --io threads`: `depth` psync threads, each on its
  # own slice of the file (fio cannot share one sequential cursor between jobs as
  # spate's threads do), reported as one group. Shows what a thread pool gets from
  # this machine next to what fio's io_uring engine gets.
  local file=$dir/fio-test
  rm -f "$file"
  settle
  local slice=$(( $(numfmt --from=iec "$size") / $3 ))
  "${pinned[@]}" fio --name=spate-cmp --filename="$file" --ioengine=psync --rw="$1" --bs="$2" --norandommap=1 \
    --iomem_align=4096 "${fio_mem[@]}" \
    --numjobs="$3" --size="$slice" --offset_increment="$slice" --group_reporting \
    --direct="$4" --end_fsync="$5" --runtime="$runtime" --output-format=json > "$6"
  rm -f "$file"
}

run_spate() { # io rw bs depth direct fsync -> json file
  local flags=()
  [ "$5" = 1 ] && flags+=(--direct)
  [ "$6" = 1 ] && flags+=(--end-fsync)
  settle
  "${pinned[@]}" "$spate" bench -q --json --io "$1" --rw "$2" --bs "$3" --iodepth "$4" --size "$size" \
    --runtime "$runtime" "${flags[@]}" "$dir" > "$7"
}

echo "machine: $(nproc) cores, $(uname -r), $(df -T "$dir" | awk 'NR==2 {print $2, $1}')"
echo "$(fio --version), spate $($spate --version | cut -d' ' -f2); size $size, runtime ${runtime}s, $rounds rounds; both pinned to CPU ${pin:-(none)}"
if [ -n "${ONLY:-}" ]; then # ONLY=write: just the jobs whose name matches
  selected=()
  for j in "${jobs[@]}"; do [[ ${j%%|*} =~ $ONLY ]] && selected+=("$j"); done
  jobs=("${selected[@]}")
fi
for round in $(seq "$rounds"); do
  for i in "${!jobs[@]}"; do
    IFS='|' read -r name rw bs depth direct fsync <<< "${jobs[$i]}"
    # The first write after the read jobs freed their files ran at a third of the
    # speed of the next ones, whichever tool it was: a write run nobody counts takes
    # that slot.
    [[ $rw == *write* ]] && run_fio "$rw" "$bs" "$depth" "$direct" "$fsync" /dev/null
    # Which tool goes first alternates from round to round, so that neither always
    # runs right after the other (the file each gets, and what the disk is still
    # doing with the one removed before it, depend on the position).
    if (( round % 2 == 1 )); then
      run_fio "$rw" "$bs" "$depth" "$direct" "$fsync" "$out/fio.$i.$round.json"
      run_spate uring "$rw" "$bs" "$depth" "$direct" "$fsync" "$out/uring.$i.$round.json"
    else
      run_spate uring "$rw" "$bs" "$depth" "$direct" "$fsync" "$out/uring.$i.$round.json"
      run_fio "$rw" "$bs" "$depth" "$direct" "$fsync" "$out/fio.$i.$round.json"
    fi
    [ -n "$pairs" ] && continue
    run_spate threads "$rw" "$bs" "$depth" "$direct" "$fsync" "$out/threads.$i.$round.json"
    run_fio_psync "$rw" "$bs" "$depth" "$direct" "$fsync" "$out/psync.$i.$round.json"
  done
done

python3 - "$out" "$rounds" "$pairs" "${jobs[@]}" <<'PY'
import json, statistics, sys
out, rounds, pairs, jobs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]

def fio(path, d):
    j = json.load(open(path))["jobs"][0]
    r = j[d]
    # fio's lat (slat + clat): spate times an operation from before it is queued, so
    # its figure includes the submission, as fio's lat does. fio's CPU is its job
    # thread's own (RUSAGE_THREAD): work the kernel hands to io_uring's io-wq threads,
    # such as buffered writes on ext4, is not in it, while spate's (RUSAGE_SELF) counts
    # every thread of the process; compare CPU across tools with that in mind.
    return r["bw_bytes"] / 1e6, r["iops"], r["lat_ns"]["mean"] / 1e3, \
        (j["usr_cpu"] + j["sys_cpu"]) / 100 * j["job_runtime"] / 1e3

def spate(path, d):
    j = json.load(open(path))["jobs"][0]
    r = j[d]
    return r["mb_s"], r["iops"], r["lat_ns"]["mean"] / 1e3, \
        j["cpu"]["user_s"] + j["cpu"]["system_s"], j.get("in_flight_mean") or 0.0

def median(f, tool, i, d):
    runs = [f(f"{out}/{tool}.{i}.{r}.json", d) for r in range(1, rounds + 1)]
    return [statistics.median(x) for x in zip(*runs)]

if pairs:
    print()
    print("| job | fio MB/s | spate MB/s | spate/fio | fio IOPS | spate IOPS | spate/fio "
          "| fio lat mean | spate lat mean | in flight fio / spate | MB/s of every round (fio / spate) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for i, spec in enumerate(jobs):
        name, rw = spec.split("|")[:2]
        d = "write" if "write" in rw else "read"
        f, u = median(fio, "fio", i, d), median(spate, "uring", i, d)
        each = [(fio(f"{out}/fio.{i}.{r}.json", d)[0], spate(f"{out}/uring.{i}.{r}.json", d)[0])
                for r in range(1, rounds + 1)]
        print(f"| {name} | {f[0]:.1f} | {u[0]:.1f} | {u[0]/f[0]:.2f} | {f[1]:.0f} | {u[1]:.0f} | "
              f"{u[1]/f[1]:.2f} | {f[2]:.0f} µs | {u[2]:.0f} µs | "
              # Little's law: IOPS × mean latency, the operations in flight on average
              # over the job's time (an end fsync inside it lowers both alike).
              f"{f[1] * f[2] / 1e6:.1f} / {u[1] * u[2] / 1e6:.1f} ({u[4]:.1f}) | "
              + ", ".join(f"{a:.0f}/{b:.0f}" for a, b in each) + " |")
    sys.exit(0)

print()
print("| job | fio MB/s | spate uring MB/s | uring/fio | fio IOPS | spate uring IOPS | uring/fio "
      "| fio lat mean | spate lat mean | spate threads MB/s | uring/threads "
      "| fio psync×depth MB/s | fio io_uring/psync | CPU s fio / uring / threads |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for i, spec in enumerate(jobs):
    name, rw = spec.split("|")[:2]
    d = "write" if "write" in rw else "read"
    f, u, t = median(fio, "fio", i, d), median(spate, "uring", i, d), median(spate, "threads", i, d)
    p = median(fio, "psync", i, d)
    print(f"| {name} | {f[0]:.1f} | {u[0]:.1f} | {u[0]/f[0]:.2f} | {f[1]:.0f} | {u[1]:.0f} | "
          f"{u[1]/f[1]:.2f} | {f[2]:.0f} µs | {u[2]:.0f} µs | {t[0]:.1f} | {u[0]/t[0]:.2f} | "
          f"{p[0]:.1f} | {f[0]/p[0]:.2f} | {f[3]:.2f} / {u[3]:.2f} / {t[3]:.2f} |")

print()
print("MB/s of every round (fio / spate uring / spate threads / fio psync):")
for i, spec in enumerate(jobs):
    name, rw = spec.split("|")[:2]
    d = "write" if "write" in rw else "read"
    rows = [[f(f"{out}/{tool}.{i}.{r}.json", d)[0] for r in range(1, rounds + 1)]
            for f, tool in [(fio, "fio"), (spate, "uring"), (spate, "threads"), (fio, "psync")]]
    print(f"  {name}: " + "  ".join(" / ".join(f"{x:.0f}" for x in run) for run in zip(*rows)))
PY
