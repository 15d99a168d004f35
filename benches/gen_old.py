#!/usr/bin/env python3
"""Pads a `spate hash --json` manifest to N lines for the --update memory benchmark.

    python3 benches/gen_old.py REAL.json N OUT.json

Adds N - len(REAL) records of files that do not exist (paths under the first
record's root, in `<root>/zz-gone/dNNNN/fNNNNNN`), with metadata, and writes all
records in walk order (components compared as bytes, depth first), as `spate hash`
writes them. `--update OUT.json ROOT` then streams every line: the real ones are
joined with the walk, the padding is counted as gone.
"""
import json
import sys


def key(record):
    path = bytes.fromhex(record["path_hex"]) if "path_hex" in record else record["path"].encode()
    return [c for c in path.split(b"/") if c not in (b"", b".")]


def main():
    real_path, total, out_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(real_path) as f:
        real = [json.loads(line) for line in f if line.strip()]
    root = real[0]["path"].split("/")[0]
    template = dict(real[0])
    records = real
    for i in range(max(0, total - len(real))):
        rec = dict(template)
        rec["path"] = f"{root}/zz-gone/d{i // 1000:04}/f{i:07}"
        rec["inode"] = 10**9 + i
        records.append(rec)
    records.sort(key=key)
    with open(out_path, "w") as f:
        for rec in records:
            f.write(json.dumps(rec, separators=(",", ":"), sort_keys=True))
            f.write("\n")


if __name__ == "__main__":
    main()
