#!/usr/bin/env python3
"""Generates a tree of compressible text files for the archive benchmarks.

    python3 benches/gen_text.py ROOT [FILES]

ROOT/text/: FILES files (default 20000) of 1 KiB-96 KiB (log-uniform, about 20 KiB on
average, so about 400 MB in all), 200 files per directory. The text is lines of words
drawn from a Zipf-distributed vocabulary of 30,000 made-up words, so it compresses
about as well as prose or source code (zstd -3: roughly 3x), and differs from file to
file. Deterministic (fixed seed); written once, then reused.
"""
import itertools
import os
import random
import sys


def main():
    root = sys.argv[1]
    files = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    done = os.path.join(root, f".text-{files}.done")
    if os.path.exists(done):
        return
    rng = random.Random(7)
    letters = "etaoinshrdlucmfwypvbgkjqxz"
    vocab = []
    for _ in range(30000):
        n = min(12, max(1, int(rng.expovariate(1 / 5)) + 1))
        vocab.append("".join(rng.choice(letters[: rng.randint(8, 26)]) for _ in range(n)))
    weights = list(itertools.accumulate(1 / (i + 1) for i in range(len(vocab))))
    text = os.path.join(root, "text")
    for i in range(files):
        d = os.path.join(text, f"d{i // 200:03d}")
        os.makedirs(d, exist_ok=True)
        size = int(1024 * (96 ** rng.random()))
        words = rng.choices(vocab, cum_weights=weights, k=size // 5 + 1)
        lines = []
        for j in range(0, len(words), 12):
            lines.append(" ".join(words[j : j + 12]))
        body = ("\n".join(lines) + "\n").encode()[:size]
        with open(os.path.join(d, f"f{i:05d}.txt"), "wb") as f:
            f.write(body)
    open(done, "w").close()


if __name__ == "__main__":
    main()
