#!/usr/bin/env python3
"""audit_tamper.py: rewrites dcr audit export files the way a dishonest host
or a corrupted disk would, for tests/e2e/audit.sh. Standard library only
(no msgpack module): the export layout of docs/event-format.md is small
enough to walk by hand. Output files are canonical again, so `dcr audit
verify` gets past decoding and must find the tampering itself.

usage:
  audit_tamper.py info FILE                  events and entry sizes
  audit_tamper.py find FILE SEQ TEXT         offset of TEXT in entry SEQ
  audit_tamper.py flip FILE OUT SEQ OFF BIT  flip bit BIT of byte OFF of entry SEQ
                                             (OFF < 0 counts from the end, so
                                             -1 is the last signature byte)
  audit_tamper.py drop FILE OUT SEQ          remove entry SEQ
  audit_tamper.py swap FILE OUT A B          exchange entries A and B
  audit_tamper.py truncate FILE OUT N        keep entries [0, N)
  audit_tamper.py checkpoint FILE OUT OTHER  use OTHER's checkpoint
"""
import struct
import sys


def read_value(b, i):
    """Returns (end, kind, payload) of the msgpack value at i."""
    t = b[i]
    if t <= 0x7F or t >= 0xE0:
        return i + 1, "int", None
    if 0xA0 <= t <= 0xBF:
        n = t & 0x1F
        return i + 1 + n, "str", b[i + 1:i + 1 + n]
    if 0x90 <= t <= 0x9F:
        return read_items(b, i + 1, t & 0x0F, "array")
    if 0x80 <= t <= 0x8F:
        return read_items(b, i + 1, 2 * (t & 0x0F), "map")
    if t in (0xC0, 0xC2, 0xC3):
        return i + 1, "scalar", None
    if t in (0xC4, 0xC5, 0xC6, 0xD9, 0xDA, 0xDB):
        w = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}[t]
        n = int.from_bytes(b[i + 1:i + 1 + w], "big")
        s = i + 1 + w
        return s + n, "bin" if t <= 0xC6 else "str", b[s:s + n]
    if t in (0xCC, 0xCD, 0xCE, 0xCF, 0xD0, 0xD1, 0xD2, 0xD3, 0xCA, 0xCB):
        w = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8,
             0xCA: 4, 0xCB: 8}[t]
        return i + 1 + w, "int", None
    if t in (0xDC, 0xDD):
        w = 2 if t == 0xDC else 4
        n = int.from_bytes(b[i + 1:i + 1 + w], "big")
        return read_items(b, i + 1 + w, n, "array")
    if t in (0xDE, 0xDF):
        w = 2 if t == 0xDE else 4
        n = int.from_bytes(b[i + 1:i + 1 + w], "big")
        return read_items(b, i + 1 + w, 2 * n, "map")
    raise ValueError("unsupported msgpack type 0x%02x at %d" % (t, i))


def read_items(b, i, n, kind):
    items = []
    for _ in range(n):
        s = i
        i, k, p = read_value(b, i)
        items.append((s, i, k, p))
    return i, kind, items


def bin_header(n):
    if n < 256:
        return bytes([0xC4, n])
    if n < 65536:
        return b"\xc5" + struct.pack(">H", n)
    return b"\xc6" + struct.pack(">I", n)


def array_header(n):
    if n < 16:
        return bytes([0x90 | n])
    if n < 65536:
        return b"\xdc" + struct.pack(">H", n)
    return b"\xdd" + struct.pack(">I", n)


def load(path):
    b = open(path, "rb").read()
    end, kind, items = read_value(b, 0)
    if kind != "map" or end != len(b):
        raise ValueError("%s: not an export file" % path)
    fields = {}
    for j in range(0, len(items), 2):
        key = items[j][3].decode()
        s, e, k, p = items[j + 1]
        fields[key] = (b[s:e], k, p)
    if fields.get("format", (None, None, b""))[2] != b"dcr.audit-export/1":
        raise ValueError("%s: not a dcr.audit-export/1 file" % path)
    entries = [bytearray(p) for (_, _, _, p) in fields["entries"][2]]
    return fields, entries


def save(path, fields, entries):
    out = bytearray([0x86])
    for key in sorted(fields):  # ASCII keys: sorted() is bytewise order
        out += bytes([0xA0 | len(key)]) + key.encode()
        if key == "entries":
            out += array_header(len(entries))
            for e in entries:
                out += bin_header(len(e)) + e
        else:
            out += fields[key][0]
    open(path, "wb").write(out)


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    op, path = argv[1], argv[2]
    fields, entries = load(path)
    if op == "info":
        print(len(entries), " ".join(str(len(e)) for e in entries))
        return 0
    if op == "find":
        seq, text = int(argv[3]), argv[4].encode()
        off = bytes(entries[seq][:-64]).find(text)
        if off < 0:
            sys.stderr.write("text not found in entry %d\n" % seq)
            return 1
        print(off)
        return 0
    out = argv[3]
    if op == "flip":
        seq, off, bit = int(argv[4]), int(argv[5]), int(argv[6])
        entries[seq][off] ^= 1 << bit
    elif op == "drop":
        del entries[int(argv[4])]
    elif op == "swap":
        a, b = int(argv[4]), int(argv[5])
        entries[a], entries[b] = entries[b], entries[a]
    elif op == "truncate":
        del entries[int(argv[4]):]
    elif op == "checkpoint":
        other, _ = load(argv[4])
        fields["checkpoint"] = other["checkpoint"]
    else:
        sys.stderr.write(__doc__)
        return 2
    save(out, fields, entries)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
