#!/usr/bin/env python3
"""Checks a screenshot is not blank: enough non-white pixels, and enough pixels of given colours.

A PNG reader in plain Python (zlib + the five scanline filters), for 8-bit greyscale, RGB and
RGBA images, which is what Chromium writes.

Usage: png_check.py SHOT.png [--min-ink FRACTION] [--colour RRGGBB:MIN_PIXELS]...
Exit 0 when every check passes, 1 (with what failed) otherwise.
"""
import argparse
import struct
import sys
import zlib


def read_png(path):
    """Returns (width, height, channels, rows) with rows as bytearrays of raw samples."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat = 8, b""
    width = height = depth = colour_type = interlace = None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour_type)
    if depth != 8 or channels is None or interlace != 0:
        raise ValueError(f"{path}: unsupported PNG (depth {depth}, colour type {colour_type}, "
                         f"interlace {interlace})")
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(height):
        kind, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up = prev[x]
            upleft = prev[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + ((left + up) >> 1)) & 0xFF
            elif kind == 4:
                p = left + up - upleft
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else upleft)
                line[x] = (line[x] + pred) & 0xFF
        rows.append(line)
        prev = line
    return width, height, channels, rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("png")
    ap.add_argument("--min-ink", type=float, default=0.01,
                    help="least fraction of pixels that are not white")
    ap.add_argument("--colour", action="append", default=[],
                    help="RRGGBB:N: at least N pixels within 8 of this colour in every channel")
    args = ap.parse_args()
    width, height, channels, rows = read_png(args.png)
    wanted = []
    for c in args.colour:
        hex_part, n = c.split(":")
        wanted.append(((int(hex_part[0:2], 16), int(hex_part[2:4], 16), int(hex_part[4:6], 16)),
                       int(n), hex_part))
    ink = 0
    found = [0] * len(wanted)
    for line in rows:
        for x in range(0, width * channels, channels):
            if channels >= 3:
                r, g, b = line[x], line[x + 1], line[x + 2]
            else:
                r = g = b = line[x]
            if r < 245 or g < 245 or b < 245:
                ink += 1
            for k, ((wr, wg, wb), _, _) in enumerate(wanted):
                if abs(r - wr) <= 8 and abs(g - wg) <= 8 and abs(b - wb) <= 8:
                    found[k] += 1
    total = width * height
    failures = []
    print(f"{args.png}: {width}x{height}, {ink} of {total} pixels not white ({ink / total:.1%})")
    if ink < args.min_ink * total:
        failures.append(f"only {ink / total:.2%} of the pixels are not white "
                        f"(want at least {args.min_ink:.0%}): the page looks blank")
    for (_, n, name), got in zip(wanted, found):
        print(f"  #{name}: {got} pixels (want at least {n})")
        if got < n:
            failures.append(f"#{name}: {got} pixels, want at least {n}")
    for f in failures:
        print("FAILED: " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
