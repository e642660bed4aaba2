#!/usr/bin/env python3
"""audit_indep.py: an independent verifier of dcr export and proof files,
written from docs/event-format.md alone (Python standard library only, with
Ed25519 verification written out from RFC 8032 §5.1.7). It checks the
cryptographic half of `dcr audit verify`: canonical encoding, envelope
fields, positions, signatures, the Merkle root and the signed checkpoint,
and inclusion proofs. The room's rules (docs/rules.md, docs/room-format.md)
are replayed by audit_rules.py, written from those pages, which imports
this file.

tests/e2e/audit.sh runs it on real exports and compares its root with the
one `dcr audit verify` prints: two implementations of one specification.

usage:
  audit_indep.py export FILE   prints "ok ROOM EVENTS ROOT" or "bad: REASON"
  audit_indep.py proof FILE    prints "ok ROOM SEQ TYPE" or "bad: REASON"
exit 0 when ok, 1 when bad.
"""
import hashlib
import struct
import sys

# ---- canonical msgpack (docs/event-format.md §1) ---------------------------


class Bad(Exception):
    pass


def dec(b, i=0, depth=0):
    """Decodes one canonical value at i; returns (value, end). str -> str,
    bin -> bytes, map -> dict (keys checked strictly increasing)."""
    if depth > 16:
        raise Bad("nesting too deep")
    if i >= len(b):
        raise Bad("truncated")
    t = b[i]

    def take(n, at):
        if at + n > len(b):
            raise Bad("truncated")
        return b[at:at + n]

    def uint(n, at):
        return int.from_bytes(take(n, at), "big")

    if t <= 0x7F:
        return t, i + 1
    if t >= 0xE0:
        return t - 256, i + 1
    if 0x80 <= t <= 0x8F:
        return dec_map(b, i + 1, t & 0x0F, depth)
    if 0x90 <= t <= 0x9F:
        return dec_array(b, i + 1, t & 0x0F, depth)
    if 0xA0 <= t <= 0xBF:
        return dec_str(take(t & 0x1F, i + 1)), i + 1 + (t & 0x1F)
    if t == 0xC0:
        return None, i + 1
    if t in (0xC2, 0xC3):
        return t == 0xC3, i + 1
    if t in (0xC4, 0xC5, 0xC6, 0xD9, 0xDA, 0xDB):
        w = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}[t]
        n = uint(w, i + 1)
        lo = {0xC4: 0, 0xC5: 256, 0xC6: 65536, 0xD9: 32, 0xDA: 256, 0xDB: 65536}[t]
        if n < lo:
            raise Bad("non-canonical length at %d" % i)
        s = take(n, i + 1 + w)
        return (bytes(s) if t <= 0xC6 else dec_str(s)), i + 1 + w + n
    if t in (0xCC, 0xCD, 0xCE, 0xCF):
        w = 1 << (t - 0xCC)
        v = uint(w, i + 1)
        if v < {0xCC: 128, 0xCD: 256, 0xCE: 65536, 0xCF: 1 << 32}[t]:
            raise Bad("non-canonical integer at %d" % i)
        return v, i + 1 + w
    if t in (0xDC, 0xDD, 0xDE, 0xDF):
        w = 2 if t in (0xDC, 0xDE) else 4
        n = uint(w, i + 1)
        if n < (16 if w == 2 else 65536):
            raise Bad("non-canonical count at %d" % i)
        if t in (0xDC, 0xDD):
            return dec_array(b, i + 1 + w, n, depth)
        return dec_map(b, i + 1 + w, n, depth)
    if t in (0xD0, 0xD1, 0xD2, 0xD3):
        w = 1 << (t - 0xD0)
        v = int.from_bytes(take(w, i + 1), "big", signed=True)
        lo = {0xD0: -128, 0xD1: -32768, 0xD2: -(1 << 31), 0xD3: -(1 << 63)}[t]
        hi = {0xD0: -33, 0xD1: -129, 0xD2: -32769, 0xD3: -(1 << 31) - 1}[t]
        if not lo <= v <= hi:
            raise Bad("non-canonical integer at %d" % i)
        return v, i + 1 + w
    if t == 0xCB:
        return struct.unpack(">d", take(8, i + 1))[0], i + 9
    raise Bad("type 0x%02x not allowed at %d" % (t, i))


def dec_str(s):
    try:
        return bytes(s).decode("utf-8")
    except UnicodeDecodeError:
        raise Bad("string is not UTF-8")


def dec_array(b, i, n, depth):
    out = []
    for _ in range(n):
        v, i = dec(b, i, depth + 1)
        out.append(v)
    return out, i


def dec_map(b, i, n, depth):
    out, prev = {}, None
    for _ in range(n):
        if i >= len(b) or not (0xA0 <= b[i] <= 0xBF or b[i] in (0xD9, 0xDA, 0xDB)):
            raise Bad("map key is not a string")
        k, i = dec(b, i, depth + 1)
        kb = k.encode()
        if prev is not None and not prev < kb:
            raise Bad("map keys not strictly increasing")
        prev = kb
        out[k], i = dec(b, i, depth + 1)
    return out, i


def dec_all(b):
    v, end = dec(b)
    if end != len(b):
        raise Bad("trailing bytes")
    return v


def enc_str(s):
    s = s.encode()
    if len(s) < 32:
        return bytes([0xA0 | len(s)]) + s
    return bytes([0xD9, len(s)]) + s


def enc_bin(x):
    return bytes([0xC4, len(x)]) + x  # only 32-byte values here


def enc_uint(v):
    if v < 128:
        return bytes([v])
    for tag, w in ((0xCC, 1), (0xCD, 2), (0xCE, 4), (0xCF, 8)):
        if v < (1 << (8 * w)):
            return bytes([tag]) + v.to_bytes(w, "big")
    raise Bad("integer too large")


# ---- Ed25519 verification (RFC 8032 §5.1) -----------------------------------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def padd(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    A = (y1 - x1) * (y2 - x2) % P
    B = (y1 + x1) * (y2 + x2) % P
    C = 2 * t1 * t2 * D % P
    Dd = 2 * z1 * z2 % P
    E, F, G, H = B - A, Dd - C, Dd + C, B + A
    return (E * F % P, G * H % P, F * G % P, E * H % P)


def pmul(s, pt):
    q = (0, 1, 1, 0)
    while s:
        if s & 1:
            q = padd(q, pt)
        pt = padd(pt, pt)
        s >>= 1
    return q


def pequal(a, b):
    return (a[0] * b[2] - b[0] * a[2]) % P == 0 and (a[1] * b[2] - b[1] * a[2]) % P == 0


def decompress(s):
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        if sign:
            return None
        x = 0
    else:
        x = pow(x2, (P + 3) // 8, P)
        if (x * x - x2) % P != 0:
            x = x * SQRT_M1 % P
        if (x * x - x2) % P != 0:
            return None
        if x & 1 != sign:
            x = P - x
    return (x, y, 1, x * y % P)


GY = 4 * pow(5, P - 2, P) % P
G = decompress(GY.to_bytes(32, "little"))


def ed25519_verify(pub, msg, sig):
    A = decompress(pub)
    R = decompress(sig[:32])
    if A is None or R is None:
        return False
    s = int.from_bytes(sig[32:], "little")
    if s >= L:
        return False
    h = int.from_bytes(hashlib.sha512(sig[:32] + pub + msg).digest(), "little") % L
    return pequal(pmul(s, G), padd(R, pmul(h, A)))


# ---- events, Merkle tree, checkpoints (§3-§6) -------------------------------

ENV_KEYS = ["actor", "body", "room", "seq", "ts", "type", "v"]


def is_room(s):
    return isinstance(s, str) and len(s) == 32 and all(c in "0123456789abcdef" for c in s)


def check_entry(entry, room, pos):
    if len(entry) <= 64:
        raise Bad("seq %d: entry too short" % pos)
    env, sig = entry[:-64], entry[-64:]
    try:
        e = dec_all(env)
    except Bad as x:
        raise Bad("seq %d: malformed envelope: %s" % (pos, x))
    if not isinstance(e, dict) or sorted(e) != ENV_KEYS:
        raise Bad("seq %d: envelope fields" % pos)
    if e["v"] != 1 or not isinstance(e["actor"], bytes) or len(e["actor"]) != 32:
        raise Bad("seq %d: envelope version or actor" % pos)
    if not isinstance(e["body"], dict) or not isinstance(e["type"], str):
        raise Bad("seq %d: body or type" % pos)
    if e["room"] != room:
        raise Bad("seq %d (%s): other room" % (pos, e["type"]))
    if e["seq"] != pos:
        raise Bad("seq %d (%s): signed for position %d" % (pos, e["type"], e["seq"]))
    if not ed25519_verify(e["actor"], b"dcr.event.v1\x00" + env, sig):
        raise Bad("seq %d (%s): bad signature" % (pos, e["type"]))
    return e


def leaf(entry):
    return hashlib.sha256(b"\x00" + entry).digest()


def mth(leaves):
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def check_checkpoint(raw):
    cp = dec_all(raw)
    if not isinstance(cp, dict) or sorted(cp) != ["key", "room", "root", "sig", "size", "ts"]:
        raise Bad("checkpoint fields")
    if not is_room(cp["room"]):
        raise Bad("checkpoint room")
    body = (b"\x84" + enc_str("room") + enc_str(cp["room"]) + enc_str("root") +
            enc_bin(cp["root"]) + enc_str("size") + enc_uint(cp["size"]) +
            enc_str("ts") + enc_uint(cp["ts"]))
    if not ed25519_verify(cp["key"], b"dcr.checkpoint.v1\x00" + body, cp["sig"]):
        raise Bad("checkpoint: bad signature")
    return cp


def verify_export(b):
    x = dec_all(b)
    keys = ["checkpoint", "daemon_key", "entries", "format", "participants", "room"]
    if not isinstance(x, dict) or sorted(x) != keys:
        raise Bad("export fields")
    if x["format"] != "dcr.audit-export/1" or not is_room(x["room"]):
        raise Bad("export format or room")
    for i, e in enumerate(x["entries"]):
        check_entry(e, x["room"], i)
    cp = check_checkpoint(x["checkpoint"])
    if cp["key"] != x["daemon_key"]:
        raise Bad("checkpoint not signed by the daemon key")
    if cp["room"] != x["room"] or cp["size"] != len(x["entries"]):
        raise Bad("checkpoint room or size")
    root = mth([leaf(e) for e in x["entries"]])
    if root != cp["root"]:
        raise Bad("root mismatch")
    return "ok %s %d %s" % (x["room"], len(x["entries"]), root.hex())


def verify_proof(b):
    x = dec_all(b)
    if not isinstance(x, dict) or sorted(x) != ["checkpoint", "entry", "format", "index", "proof"]:
        raise Bad("proof fields")
    if x["format"] != "dcr.audit-proof/1":
        raise Bad("proof format")
    cp = check_checkpoint(x["checkpoint"])
    idx, size = x["index"], cp["size"]
    if idx >= size:
        raise Bad("index beyond the checkpoint")
    e = check_entry(x["entry"], cp["room"], idx)
    # RFC 9162 §2.1.3.2
    fn, sn, r = idx, size - 1, leaf(x["entry"])
    for p in x["proof"]:
        if sn == 0:
            raise Bad("proof too long")
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != cp["root"]:
        raise Bad("inclusion proof does not verify")
    return "ok %s %d %s" % (cp["room"], idx, e["type"])


def main(argv):
    if len(argv) != 3 or argv[1] not in ("export", "proof"):
        sys.stderr.write(__doc__)
        return 2
    b = open(argv[2], "rb").read()
    try:
        print(verify_export(b) if argv[1] == "export" else verify_proof(b))
        return 0
    except (Bad, KeyError, TypeError, ValueError) as x:
        print("bad: %s" % x)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
