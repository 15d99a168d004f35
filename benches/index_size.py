#!/usr/bin/env python3
"""Prints how much of an indexed .tar.zst its index takes: the table of contents'
skippable frame and the seek table, in bytes and as a share of the archive.

    python3 benches/index_size.py ARCHIVE.tar.zst

Reads the layout the README's "Indexed .tar.zst" section gives: the seek table
(zstd's seekable format) ends the file, and the TOC frame (version 3: head, metadata
section, digest section) sits between the last data frame (the sum of the seek
table's compressed sizes) and the seek table.
"""
import struct
import sys


def main() -> None:
    path = sys.argv[1]
    data = open(path, "rb").read()
    n, descriptor, magic = struct.unpack("<IBI", data[-9:])
    if magic != 0x8F92EAB1:
        sys.exit(f"{path}: no seek table (not an indexed .tar.zst)")
    entry = 12 if descriptor & 0x80 else 8
    table = 8 + n * entry + 9
    table_at = len(data) - table
    frames_end = sum(
        struct.unpack_from("<I", data, table_at + 8 + i * entry)[0] for i in range(n)
    )
    toc_magic, toc_size = struct.unpack_from("<II", data, frames_end)
    if toc_magic != 0x184D2A5B:
        sys.exit(f"{path}: no table of contents after the data frames")
    toc = 8 + toc_size
    head = frames_end + 8
    if data[head + 4] != 3:
        sys.exit(f"{path}: table of contents version {data[head + 4]}, this script reads 3")
    members, = struct.unpack_from("<I", data, head + 8)
    per_block, dictionary, meta, digests = struct.unpack_from("<IIII", data, head + 24)
    blocks = -(-members // per_block)
    # The block directory: compressed and decompressed length of each block.
    directory = head + 136 + dictionary
    raw = sum(
        struct.unpack_from("<I", data, directory + b * 16 + 4)[0] for b in range(blocks)
    )
    total = len(data)
    print(
        f"  index of {path.rsplit('/', 1)[-1]}: {members} members, {n} frames; TOC {toc} bytes"
        f" ({toc / max(members, 1):.1f} a member: metadata {meta} bytes in {blocks} blocks"
        f" from {raw}, digests {digests}), seek table "
        f"{table} bytes: {(toc + table) / total * 100:.3f}% of {total} bytes"
    )


if __name__ == "__main__":
    main()
