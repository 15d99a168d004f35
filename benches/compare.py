#!/usr/bin/env python3
"""Runs commands with hyperfine in interleaved rounds and prints medians and ratios.

    python3 benches/compare.py TITLE [--rounds R] [--runs N] [--prepare CMD] -- CMD...

Each round runs every command N times (after one warm-up run in the first round);
the median is over all rounds. Rounds matter on a shared VM: its speed drifts in
phases lasting seconds, and hyperfine alone runs all of one command before the next,
so a slow phase lands on a single command. The first command is the base: a line's
"2.50x" means it took 2.5 times as long as the first. The CPU column is user + system
time (hyperfine's mean per round, averaged over the rounds; of the command and
what it started): on a shared machine it says more than the wall time.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("title")
    p.add_argument("--rounds", type=int, default=int(os.environ.get("ROUNDS", 3)))
    p.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", 3)))
    p.add_argument("--prepare")
    p.add_argument("commands", nargs="+")
    a = p.parse_args()
    times = {c: [] for c in a.commands}
    cpu = {c: [] for c in a.commands}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.json")
        for r in range(a.rounds):
            cmd = ["hyperfine", "-N", "--runs", str(a.runs), "--export-json", out]
            if r == 0 and not a.prepare:
                cmd += ["--warmup", "1"]
            if a.prepare:
                cmd = [c for c in cmd if c != "-N"] + ["--prepare", a.prepare]
            subprocess.run(cmd + a.commands, check=True, stdout=subprocess.DEVNULL)
            for res in json.load(open(out))["results"]:
                times[res["command"]] += res["times"]
                cpu[res["command"]].append(res["user"] + res["system"])
    print(f"== {a.title} (median of {a.rounds} rounds x {a.runs} runs)")
    base = statistics.median(times[a.commands[0]])
    for c in a.commands:
        m = statistics.median(times[c])
        c_s = statistics.mean(cpu[c])
        print(f"  {m:8.3f} s  {m / base:5.2f}x  cpu {c_s:7.3f} s   {c}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
