#!/usr/bin/env python3
"""Generates the benchmark trees (idempotent: an existing complete tree is kept).

small/: N files of 1 KiB-512 KiB (log-uniform sizes), 100 files per directory.
big/:   two files of BIG bytes each.
Content is pseudo-random and incompressible; the layout is the same on every run.
"""
import os
import random
import sys


def write_random(path, size, rng):
    # A 1 MiB random block, rotated per file, is enough to make every file different
    # without paying for urandom on gigabytes.
    with open(path, "wb") as f:
        block = rng.randbytes(1 << 20)
        left = size
        while left > 0:
            n = min(left, len(block))
            f.write(block[:n])
            block = block[1:] + block[:1] if n == len(block) else block
            left -= n


def parse_size(text):
    """Bytes from '4096', '4M', '1G' (binary units)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text[-1:].upper() in units:
        return int(text[:-1]) * units[text[-1].upper()]
    return int(text)


def main():
    root = sys.argv[1]
    files = int(sys.argv[2]) if len(sys.argv) > 2 else 30000
    big = parse_size(sys.argv[3]) if len(sys.argv) > 3 else 1 << 30
    rng = random.Random(42)
    small = os.path.join(root, "small")
    done = os.path.join(root, f".small-{files}.done")
    if not os.path.exists(done):
        for i in range(files):
            d = os.path.join(small, f"d{i // 100:04d}")
            os.makedirs(d, exist_ok=True)
            size = int(1024 * (512 ** rng.random()))
            with open(os.path.join(d, f"f{i:06d}.bin"), "wb") as f:
                f.write(rng.randbytes(size))
        open(done, "w").close()
    bigdir = os.path.join(root, "big")
    done = os.path.join(root, f".big-{big}.done")
    if not os.path.exists(done):
        os.makedirs(bigdir, exist_ok=True)
        for i in range(2):
            write_random(os.path.join(bigdir, f"big{i}"), big, rng)
        open(done, "w").close()


if __name__ == "__main__":
    main()
