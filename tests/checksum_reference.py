#!/usr/bin/env python3
"""A second, independent computation of ROM internal checksums, for
tests/checksums.rs: written from the published descriptions of each
console's header (not from ninja-fs's code), in plain Python.

Usage: checksum_reference.py SYSTEM FILE
SYSTEM is snes, gb, mega, sms, n64 or gba; FILE is the image as emulators
play it (headerless, deinterleaved, big-endian). Prints one line per field:
`name stored computed` in lower-case hex, or `none` when the image has no
header of that kind.
"""

import struct
import sys
import zlib


def snes(data):
    # The header place whose complement pair is valid, else the one whose
    # map byte fits its place: LoROM 0x7fc0, HiROM 0xffc0, ExHiROM 0x40ffc0.
    places = [(0x7FC0, (0x20, 0x30, 0x22, 0x32, 0x23, 0x33)),
              (0xFFC0, (0x21, 0x31)),
              (0x40FFC0, (0x25, 0x35))]
    valid = [b for b, _ in places if b + 0x20 <= len(data)
             and struct.unpack_from("<H", data, b + 0x1C)[0]
             + struct.unpack_from("<H", data, b + 0x1E)[0] == 0xFFFF]
    agreeing = [b for b, maps in places if b + 0x20 <= len(data) and data[b + 0x15] in maps]
    both = [b for b in valid if b in agreeing]
    base = (both or valid or [b for b in agreeing
                              if 0x07 <= data[b + 0x17] <= 0x0D] or [None])[0]
    if base is None:
        return None
    image = bytearray(data)
    # The sum as it will be once checksum and complement are a pair.
    image[base + 0x1C:base + 0x20] = b"\xff\xff\x00\x00"
    # The console mirrors what lies past the largest power of two.
    def mirrored(block):
        if not block:
            return 0
        n = len(block)
        main = n if n & (n - 1) == 0 else 1 << (n.bit_length() - 1)
        total = sum(block[:main])
        if main == n:
            return total
        rest = block[main:]
        span = 1 << (len(rest) - 1).bit_length()
        return total + mirrored(rest) * (main // span)
    computed = mirrored(image) & 0xFFFF
    complement, checksum = struct.unpack_from("<HH", data, base + 0x1C)
    return [("checksum", checksum, computed),
            ("complement", complement, computed ^ 0xFFFF)]


def gb(data):
    if len(data) < 0x150:
        return None
    header = 0
    for b in data[0x134:0x14D]:
        header = (header - b - 1) & 0xFF
    # Over the image as it is: a fixer rewrites the header checksum first.
    glob = (sum(data) - data[0x14E] - data[0x14F]) & 0xFFFF
    return [("header", data[0x14D], header),
            ("global", struct.unpack_from(">H", data, 0x14E)[0], glob)]


def mega(data):
    if len(data) < 0x200:
        return None
    body = data[0x200:] + (b"\x00" if len(data) % 2 else b"")
    words = struct.unpack(">%dH" % (len(body) // 2), body)
    return [("checksum", struct.unpack_from(">H", data, 0x18E)[0], sum(words) & 0xFFFF)]


def sms(data):
    if len(data) < 0x8000 or data[0x7FF0:0x7FF8] != b"TMR SEGA":
        return None
    sizes = {0xA: 0x2000, 0xB: 0x4000, 0xC: 0x8000, 0xD: 0xC000, 0xE: 0x10000,
             0xF: 0x20000, 0x0: 0x40000, 0x1: 0x80000, 0x2: 0x100000}
    size = sizes.get(data[0x7FFF] & 0x0F)
    if size is None:
        return None
    # Every byte of the declared size but the 16-byte header.
    if size <= 0x8000:
        covered = data[:size - 0x10]
    else:
        covered = data[:0x7FF0] + data[0x8000:size]
    return [("checksum", struct.unpack_from("<H", data, 0x7FFA)[0], sum(covered) & 0xFFFF)]


N64_CIC = {0x6170A4A1: 6101, 0x90BB6CB5: 6102, 0x0B050EE0: 6103,
           0x98BC2C86: 6105, 0xACC8580A: 6106}
N64_SEED = {6101: 0xF8CA4DDC, 6102: 0xF8CA4DDC, 6103: 0xA3886759,
            6105: 0xDF26F436, 6106: 0x1FEA617A}


def n64(data):
    if len(data) < 0x101000:
        return None
    cic = N64_CIC.get(zlib.crc32(data[0x40:0x1000]))
    if cic is None:
        return None
    m = 0xFFFFFFFF
    t1 = t2 = t3 = t4 = t5 = t6 = N64_SEED[cic]
    for i in range(0x1000, 0x101000, 4):
        d = struct.unpack_from(">I", data, i)[0]
        if (t6 + d) & m < t6:
            t4 = (t4 + 1) & m
        t6 = (t6 + d) & m
        t3 ^= d
        s = d & 0x1F
        r = ((d << s) | (d >> (32 - s))) & m
        t5 = (t5 + r) & m
        t2 = t2 ^ r if t2 > d else t2 ^ t6 ^ d
        if cic == 6105:
            t1 = (t1 + (struct.unpack_from(">I", data, 0x750 + (i & 0xFF))[0] ^ d)) & m
        else:
            t1 = (t1 + (t5 ^ d)) & m
    if cic == 6103:
        crc1, crc2 = ((t6 ^ t4) + t3) & m, ((t5 ^ t2) + t1) & m
    elif cic == 6106:
        crc1, crc2 = ((t6 * t4) + t3) & m, ((t5 * t2) + t1) & m
    else:
        crc1, crc2 = t6 ^ t4 ^ t3, t5 ^ t2 ^ t1
    stored1, stored2 = struct.unpack_from(">II", data, 0x10)
    return [("cic", cic, cic), ("crc1", stored1, crc1), ("crc2", stored2, crc2)]


def gba(data):
    if len(data) < 0xC0 or data[0xB2] != 0x96:
        return None
    total = sum(data[0xA0:0xBD])
    return [("complement", data[0xBD], (-(total + 0x19)) & 0xFF)]


def main():
    system, path = sys.argv[1], sys.argv[2]
    with open(path, "rb") as f:
        data = f.read()
    fields = globals()[system](data)
    if fields is None:
        print("none")
        return
    for name, stored, computed in fields:
        print("%s %x %x" % (name, stored, computed))


if __name__ == "__main__":
    main()
