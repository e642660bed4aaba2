#!/usr/bin/env python3
"""audit_rules.py: the rules half of an independent verifier of dcr export
files, written from docs/rules.md and docs/room-format.md alone (Python
standard library only). The cryptographic half (canonical msgpack,
envelopes, signatures, Merkle root, checkpoints) is audit_indep.py, written
from docs/event-format.md; this file imports it and adds, for every event
in log order, the room's rules: the definition parser and validator, the
SQL tokenizer that decides which datasets a query reads, the status and
role checks of every event type, the inputs and schema of run.completed,
the differential-privacy fields and the epsilon ledger of run.requested,
and at the end the export's participant list.

tests/e2e/audit.sh and audit_forge.sh run it on real and on forged exports
and require the same verdict as `dcr audit verify`: valid, or invalid at
the same seq and event type.

usage:
  audit_rules.py export FILE   prints "ok ROOM EVENTS ROOT" or
                               "bad: seq N (TYPE): REASON" / "bad: REASON"
  audit_rules.py ledger FILE   the same check; when ok prints the epsilon
                               budgets replayed, worded as `dcr audit verify`
exit 0 when ok, 1 when bad.
"""
import hashlib
import json
import math
import re
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import audit_indep as ai  # noqa: E402

Bad = ai.Bad



# rules.md "File names": what body.file of dataset.provisioned may be. The
# string is already valid UTF-8 (a str of the body); the rule is on its
# code points.
MOUNT_OWN_FILES = ("schema.json", "stats.json", "status")


def file_name_ok(f):
    if not 1 <= ubytes(f) <= FILE_MAX or f in (".", "..") or f in MOUNT_OWN_FILES:
        return False
    for c in f:
        o = ord(c)
        if (c == "/" or o < 0x20 or 0x7f <= o <= 0x9f or o in (0x2028, 0x2029) or
                o in (0x061c, 0x200e, 0x200f) or 0x202a <= o <= 0x202e or
                0x2066 <= o <= 0x2069):
            return False
    return True


class Refused(Exception):
    """A rule refused the event (message without the seq prefix)."""


def refuse(msg):
    raise Refused(msg)


def ubytes(s):
    return len(s.encode("utf-8"))


def ascii_fold(s):
    """Only A-Z are folded (rules.md: case-insensitive comparisons)."""
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s)


# ---- limits (base/limits.h, as the docs state them) ---------------------------

DEF_BYTES_MAX = 1 << 20
DEF_DEPTH_MAX = 32
NAME_MAX = 63
ROOM_NAME_MAX = 128
DESCRIPTION_MAX = 4096
EMAIL_MAX = 254
PARTICIPANTS_MAX = 64
DATASETS_MAX = 64
COMPUTATIONS_MAX = 64
COLUMNS_MAX = 256
LIST_MAX = 256
QUERY_MAX = 64 * 1024
SQL_INPUTS_MAX = 10  # tables a filtered query reads (SQLite's attach limit)
SQL_COLS_MAX = 256  # result columns
SCRIPT_MAX = 256 * 1024
MIN_ROWS_MAX = 1000000000
EPSILON_MAX = 100.0
REASON_MAX = 1024
ERROR_MAX = 4096
BLOB_MAX = 128
FILE_MAX = 255
DROPS_MAX = 4096
RUNS_MAX = 10000000
RESULT_COLS_MAX = 256
RESULT_COL_BYTES_MAX = 1024
DEVS_MAX = 10000000  # development runs per room
DEV_INPUTS_MAX = 32  # inputs of one development run
EMPTY_SHA256 = hashlib.sha256(b"").digest()

# ---- JSON (room-format.md, "Parsing") -----------------------------------------


def depth_ok(b):
    depth, in_str, i = 0, False, 0
    while i < len(b):
        c = b[i]
        if in_str:
            if c == 0x5C:  # backslash skips the next byte
                i += 1
            elif c == 0x22:
                in_str = False
        elif c == 0x22:
            in_str = True
        elif c in (0x5B, 0x7B):
            depth += 1
            if depth > DEF_DEPTH_MAX:
                return False
        elif c in (0x5D, 0x7D) and depth:
            depth -= 1
        i += 1
    return True


def strict_json(b):
    if len(b) > DEF_BYTES_MAX:
        refuse("definition too large")
    if not depth_ok(b):
        refuse("nested deeper than 32 levels")

    def pairs(ps):
        out = {}
        for k, v in ps:
            if k in out:
                refuse("duplicate object key")
            out[k] = v
        return out

    def pint(s):
        v = int(s)
        if not -(1 << 63) <= v < (1 << 63):
            refuse("integer out of range")
        return v

    def pfloat(s):
        v = float(s)
        if math.isinf(v) or math.isnan(v):
            refuse("real number overflow")
        return v

    def pconst(s):
        refuse("not JSON: %s" % s)

    try:
        v = json.loads(b.decode("utf-8"), object_pairs_hook=pairs, parse_int=pint,
                       parse_float=pfloat, parse_constant=pconst)
    except (ValueError, RecursionError) as x:
        refuse("JSON syntax: %s" % x)

    def walk(x):
        if isinstance(x, str):
            for c in x:
                if c == "\0" or 0xD800 <= ord(c) <= 0xDFFF:
                    refuse("NUL or lone surrogate in a string")
        elif isinstance(x, list):
            for y in x:
                walk(y)
        elif isinstance(x, dict):
            for k, y in x.items():
                walk(k)
                walk(y)

    walk(v)
    if not isinstance(v, dict):
        refuse("the definition must be a JSON object")
    return v


# ---- field helpers ----------------------------------------------------------------


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def fields(o, allowed, what):
    if not isinstance(o, dict):
        refuse("%s: expected an object" % what)
    for k in o:
        if k not in allowed and not k.startswith("x-"):
            refuse("%s: unknown field %r" % (what, k))


def get_str(o, key, required, maxb, what):
    if key not in o:
        if required:
            refuse("%s.%s: missing" % (what, key))
        return None
    v = o[key]
    if not isinstance(v, str):
        refuse("%s.%s: expected a string" % (what, key))
    if ubytes(v) > maxb:
        refuse("%s.%s: too long" % (what, key))
    return v


def get_bool(o, key, dflt, what):
    if key not in o:
        return dflt
    if not isinstance(o[key], bool):
        refuse("%s.%s: expected true or false" % (what, key))
    return o[key]


def get_array(o, key, required, maxn, what):
    if key not in o:
        if required:
            refuse("%s.%s: missing" % (what, key))
        return None
    v = o[key]
    if not isinstance(v, list):
        refuse("%s.%s: expected an array" % (what, key))
    if len(v) > maxn:
        refuse("%s.%s: too many entries" % (what, key))
    return v


def get_names(o, key, what):
    a = get_array(o, key, False, LIST_MAX, what) or []
    out = []
    for v in a:
        if not isinstance(v, str):
            refuse("%s.%s: expected a name" % (what, key))
        if v in out:
            refuse("%s.%s: %r listed twice" % (what, key, v))
        out.append(v)
    return out


def ident_valid(s):
    if not 1 <= len(s) <= NAME_MAX:
        return False
    ok0 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
    if s[0] not in ok0 or any(c not in ok0 + "0123456789" for c in s[1:]):
        return False
    return not ascii_fold(s[:7]) == "sqlite_"


def room_name_valid(s):
    ok = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
    return (1 <= ubytes(s) <= ROOM_NAME_MAX and s[0] not in ".-" and all(c in ok for c in s))


def email_plausible(s):
    if not 3 <= ubytes(s) <= EMAIL_MAX:
        return False
    if any(not 0x21 <= ord(c) <= 0x7E or c in '"\\<>,;' for c in s):
        return False
    if s.count("@") != 1 or s[0] == "@":
        return False
    dom = s.split("@")[1]
    return len(dom) >= 3 and "." in dom and dom[0] != "." and dom[-1] != "." and ".." not in dom


# ---- keys (room-format.md, participants[]) ------------------------------------------

P = 2**255 - 19
D = -121665 * pow(121666, P - 2, P) % P
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
WEAK = [bytes(32), bytes([1]) + bytes(31),
        bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
        bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
        bytes([0xEC]) + b"\xff" * 30 + b"\x7f", bytes([0xED]) + b"\xff" * 30 + b"\x7f",
        bytes([0xEE]) + b"\xff" * 30 + b"\x7f"]


def point_valid(k):
    y = int.from_bytes(k, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    if y >= P:
        return False
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    if (v * x * x - u) % P == 0:
        pass
    elif (v * x * x + u) % P == 0:
        x = x * pow(2, (P - 1) // 4, P) % P
    else:
        return False
    return not (x == 0 and sign)


def parse_key(s):
    if not s.startswith("ed25519:"):
        return None
    t = s[8:]
    if len(t) != 44 or t[43] != "=" or any(c not in B64 for c in t[:43]):
        return None
    if B64.index(t[42]) & 3:
        return None
    bits = "".join(format(B64.index(c), "06b") for c in t[:43])[:256]
    k = int(bits, 2).to_bytes(32, "big")
    if not point_valid(k):
        return None
    masked = k[:31] + bytes([k[31] & 0x7F])
    if masked in WEAK:
        return None
    return k


# ---- the SQL tokenizer (room-format.md, "The tokenizer") ------------------------------

OPS = [b"->>", b"->", b"||", b"<=", b">=", b"<>", b"!=", b"==", b"<<", b">>"]


def is_alpha(c):
    return 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A


def is_digit(c):
    return 0x30 <= c <= 0x39


def word_start(c):
    return is_alpha(c) or c == 0x5F or c >= 0x80


def word_byte(c):
    return is_alpha(c) or is_digit(c) or c in (0x5F, 0x24) or c >= 0x80


def names_in(query):
    """The names (words and quoted identifiers, unquoted) of a query, as
    bytes; refuses an unterminated literal or identifier."""
    q, n, i, out = query.encode("utf-8"), len(query.encode("utf-8")), 0, []
    while i < n:
        c = q[i]
        if c in b" \t\n\v\f\r":
            i += 1
        elif q[i:i + 2] == b"--":
            while i < n and q[i] != 0x0A:
                i += 1
        elif q[i:i + 2] == b"/*":
            e = q.find(b"*/", i + 2)
            i = n if e < 0 else e + 2
        elif c in b"xX" and i + 1 < n and q[i + 1] == 0x27:
            e = q.find(b"'", i + 2)
            if e < 0:
                refuse("unterminated blob literal at offset %d" % i)
            i = e + 1
        elif c in b"'\"`[":
            close = 0x5D if c == 0x5B else c
            j, buf = i + 1, bytearray()
            while True:
                if j >= n:
                    refuse("unterminated %s at offset %d" %
                           ("string literal" if c == 0x27 else "quoted identifier", i))
                if q[j] == close:
                    if close != 0x5D and j + 1 < n and q[j + 1] == close:
                        buf.append(close)
                        j += 2
                        continue
                    j += 1
                    break
                buf.append(q[j])
                j += 1
            if c != 0x27:
                out.append(bytes(buf))
            i = j
        elif word_start(c):
            j = i
            while j < n and word_byte(q[j]):
                j += 1
            out.append(q[i:j])
            i = j
        elif is_digit(c) or (c == 0x2E and i + 1 < n and is_digit(q[i + 1])):
            j = i
            while j < n and (is_alpha(q[j]) or is_digit(q[j]) or q[j] in b"._" or
                             (q[j] in b"+-" and q[j - 1] in b"eE")):
                j += 1
            i = j
        elif c in b"?:@$#":
            j = i + 1
            while j < n and word_byte(q[j]):
                j += 1
            i = j
        else:
            i += 1
            for op in OPS:
                if q[i - 1:i - 1 + len(op)] == op:
                    i = i - 1 + len(op)
                    break
    return out


# privacy.md, "Errors": the only texts a run.failed may carry.
ERROR_CLASSES = {"time limit", "memory limit", "row limit", "size limit", "sql error",
                 "sql error: json path", "sql error: malformed json",
                 "sql error: integer overflow", "sql error: invalid text", "sql error: too big",
                 "sql error: not allowed", "privacy filter", "input unavailable",
                 "not supported", "storage error: Input/output error",
                 "storage error: No space left on device", "internal error",
                 "result not recordable",
                 # python and r runs (docs/compute.md)
                 "script error", "cpu limit", "process limit", "output limit", "tmp limit",
                 "output rule", "script result invalid", "sandbox unavailable",
                 "limit past host maximum", "too few rows",
                 # SQL runs (docs/compute.md, "Temporary disk")
                 "temp disk limit"}

# room-format.md, python and r "limits": field -> absolute cap.
SCRIPT_LIMITS = {"wall_seconds": 24 * 3600, "cpu_seconds": 24 * 3600,
                 "memory_mb": 256 * 1024, "processes": 4096, "output_mb": 64 * 1024,
                 "tmp_mb": 64 * 1024}


def bfold(b):
    return bytes(x + 32 if 0x41 <= x <= 0x5A else x for x in b)


# ---- the definition (room-format.md) ----------------------------------------------------


def parse_def(text):
    return parse_def_obj(strict_json(text.encode("utf-8")))


def parse_def_obj(o):
    fields(o, ["format", "name", "description", "settings", "participants", "datasets",
               "computations"], "definition")
    if get_str(o, "format", True, 64, "") != "dcr.room/1":
        refuse("format: unknown format")
    name = get_str(o, "name", True, ROOM_NAME_MAX + 64, "")
    if not room_name_valid(name):
        refuse("name: not a valid room name")
    get_str(o, "description", False, DESCRIPTION_MAX, "")
    d = {"name": name, "require_provisioned": True, "development": False, "interactive": True,
         "datasets": [], "computations": [], "participants": []}
    if "settings" in o:
        s = o["settings"]
        fields(s, ["interactive", "development", "require_provisioned"], "settings")
        d["interactive"] = get_bool(s, "interactive", True, "settings")
        d["development"] = get_bool(s, "development", False, "settings")
        d["require_provisioned"] = get_bool(s, "require_provisioned", True, "settings")
    for i, v in enumerate(get_array(o, "datasets", False, DATASETS_MAX, "") or []):
        d["datasets"].append(parse_dataset(v, "datasets[%d]" % i))
    for i, v in enumerate(get_array(o, "computations", False, COMPUTATIONS_MAX, "") or []):
        d["computations"].append(parse_computation(v, "computations[%d]" % i))
    parts = get_array(o, "participants", True, PARTICIPANTS_MAX, "")
    if not parts:
        refuse("participants: at least one is needed")
    for i, v in enumerate(parts):
        d["participants"].append(parse_participant(v, "participants[%d]" % i))
    validate(d)
    return d


def parse_named(v, allowed, what):
    fields(v, allowed, what)
    name = get_str(v, "name", True, NAME_MAX + 64, what)
    if not ident_valid(name):
        refuse("%s.name: not a valid name" % what)
    return name


# ---- differential privacy amounts (room-format.md, rules.md "The epsilon ledger")

EPS_SCALE = 1000000
DP_EPSILON_MAX = 100 * EPS_SCALE
DP_BUDGET_MAX = 1000000 * EPS_SCALE
BOUND_STEPS_MAX = 10 ** 12
DP_AGGREGATES_MAX = 64
AMOUNT_RE = re.compile(r"(0|[1-9][0-9]*)(\.([0-9]{1,6}))?\Z")
BOUND_RE = re.compile(r"-?(0|[1-9][0-9]*)(\.([0-9]{1,6}))?\Z")


def parse_amount(v, maxm, what):
    """An amount of epsilon: a decimal string or a JSON integer, > 0, in
    millionths, at most maxm."""
    if is_int(v):
        if v <= 0 or v > maxm // EPS_SCALE:
            refuse("%s: out of range" % what)
        return v * EPS_SCALE
    if not isinstance(v, str) or not AMOUNT_RE.match(v):
        refuse("%s: expected a decimal string" % what)
    whole, _, frac = v.partition(".")
    m = int(whole) * EPS_SCALE + int((frac + "000000")[:6])
    if m <= 0 or m > maxm:
        refuse("%s: out of range" % what)
    return m


def parse_bound(v, what):
    """(value in steps of its own digits, digits)."""
    if is_int(v):
        v = str(v)
    if not isinstance(v, str) or not BOUND_RE.match(v):
        refuse("%s: not a decimal bound" % what)
    neg = v.startswith("-")
    whole, _, frac = v.lstrip("-").partition(".")
    x = int(whole + frac)
    if x > BOUND_STEPS_MAX:
        refuse("%s: too large" % what)
    return (-x if neg else x), len(frac)


def parse_bounds(b, what):
    if not isinstance(b, dict):
        refuse("%s: expected an object" % what)
    if len(b) > DP_AGGREGATES_MAX:
        refuse("%s: too many columns" % what)
    out = {}
    for col, pair in b.items():
        if not ident_valid(col):
            refuse("%s.%s: not a column name" % (what, col))
        if not isinstance(pair, list) or len(pair) != 2:
            refuse("%s.%s: expected [lower, upper]" % (what, col))
        (lo, dlo), (hi, dhi) = (parse_bound(x, what) for x in pair)
        d = max(dlo, dhi)
        lo, hi = lo * 10 ** (d - dlo), hi * 10 ** (d - dhi)
        if abs(lo) > BOUND_STEPS_MAX or abs(hi) > BOUND_STEPS_MAX:
            refuse("%s.%s: more than 10^12 steps" % (what, col))
        if lo > hi:
            refuse("%s.%s: the lower bound is above the upper" % (what, col))
        out[col] = (lo, hi, d)
    return out


def validate_dp(d):
    """Rule 6 of room-format.md's whole-definition validation."""
    cd = {x["name"]: x for x in d["computations"]}
    budget = {x["name"]: x["budget"] for x in d["datasets"]}
    for c in d["computations"]:
        for x in c["inputs"]:
            if x in cd and cd[x]["epsilon"]:
                refuse("computation %s reads the result of DP computation %s" % (c["name"], x))
            if x in cd and c["epsilon"]:
                refuse("DP computation %s reads a computation" % c["name"])
        reads = datasets_read(d, c)
        for x in sorted(reads):
            if c["epsilon"] and not budget[x]:
                refuse("DP computation %s reads %s, which has no budget" % (c["name"], x))
            if not c["epsilon"] and budget[x]:
                refuse("computation %s reads budgeted dataset %s" % (c["name"], x))
        if c["epsilon"] and c["k"] > 0:
            refuse("computation %s: epsilon with min_rows_aggregated" % c["name"])
        for col in c["bounds"]:
            if not any(ds["name"] in reads and col in ds["numeric"] for ds in d["datasets"]):
                refuse("computation %s: bounds.%s names no numeric column" % (c["name"], col))


def epsilon_text(m):
    """The canonical form of an amount in millionths."""
    whole, frac = divmod(m, EPS_SCALE)
    if not frac:
        return str(whole)
    return "%d.%s" % (whole, ("%06d" % frac).rstrip("0"))


def parse_dataset(v, what):
    name = parse_named(v, ["name", "kind", "required", "share_statistics", "columns",
                           "unit", "epsilon_budget", "drops", "auto_approve"], what)
    kind = get_str(v, "kind", False, 64, what) or "table"
    if kind not in ("table", "file"):
        refuse("%s.kind: unknown kind" % what)
    ds = {"name": name, "kind": kind, "required": get_bool(v, "required", True, what),
          "columns": [], "allow": {}, "unit": None, "numeric": [], "budget": 0,
          "append": False}
    drops = get_str(v, "drops", False, 16, what)
    if drops not in (None, "replace", "append"):
        refuse("%s.drops: unknown mode" % what)
    if drops == "append":
        if kind != "table":
            refuse("%s.drops: only table datasets take append" % what)
        ds["append"] = True
    get_bool(v, "share_statistics", False, what)
    ds["policy"] = parse_policy(v, what)
    unit = get_str(v, "unit", False, NAME_MAX + 64, what)
    if "epsilon_budget" in v:
        if kind != "table":
            refuse("%s.epsilon_budget: only table datasets take a budget" % what)
        ds["budget"] = parse_amount(v["epsilon_budget"], DP_BUDGET_MAX,
                                    what + ".epsilon_budget")
    cols = get_array(v, "columns", kind == "table", COLUMNS_MAX, what)
    if kind == "file":
        if cols is not None:
            refuse("%s.columns: file datasets have no columns" % what)
        if unit is not None:
            refuse("%s.unit: file datasets have no columns" % what)
        return ds
    if not cols:
        refuse("%s.columns: a table needs at least one column" % what)
    for j, c in enumerate(cols):
        cw = "%s.columns[%d]" % (what, j)
        cn = parse_named(c, ["name", "type", "nullable", "format", "allow"], cw)
        allow = get_array(c, "allow", False, 4, cw) or []
        for x in allow:
            if x not in ("group", "aggregate", "join", "minmax"):
                refuse("%s.allow: unknown permission" % cw)
        if len(set(allow)) != len(allow):
            refuse("%s.allow: a permission is listed twice" % cw)
        ds["allow"][cn] = set(allow)
        t = get_str(c, "type", True, 64, cw)
        if t not in ("string", "integer", "float"):
            refuse("%s.type: unknown type" % cw)
        get_bool(c, "nullable", True, cw)
        f = get_str(c, "format", False, 64, cw)
        if f is not None:
            if t != "string":
                refuse("%s.format: only string columns take a format" % cw)
            if f not in ("email", "date", "sha256"):
                refuse("%s.format: unknown format" % cw)
        if any(ascii_fold(x) == ascii_fold(cn) for x in ds["columns"]):
            refuse("%s.name: column names are unique, case-insensitively" % cw)
        ds["columns"].append(cn)
        if t != "string":
            ds["numeric"].append(cn)
    if unit is not None and unit not in ds["columns"]:
        refuse("%s.unit: not a column" % what)
    ds["unit"] = unit
    return ds


def parse_policy(v, what):
    """datasets[i].auto_approve (room-format.md): None when absent."""
    if "auto_approve" not in v:
        return None
    what += ".auto_approve"
    o = v["auto_approve"]
    fields(o, ["kinds", "privacy_min_rows_aggregated_at_least", "analysts"], what)
    kinds = get_array(o, "kinds", True, 8, what)
    if not kinds:
        refuse("%s.kinds: at least one is needed" % what)
    if any(k not in ("sql", "python", "r", "synthetic") for k in kinds):
        refuse("%s.kinds: not a computation kind" % what)
    p = {"kinds": set(kinds), "min_rows": 0, "analysts": None}
    if "privacy_min_rows_aggregated_at_least" in o:
        m = o["privacy_min_rows_aggregated_at_least"]
        if not is_int(m) or not 1 <= m <= MIN_ROWS_MAX:
            refuse("%s.privacy_min_rows_aggregated_at_least: out of range" % what)
        p["min_rows"] = m
    if "analysts" in o:
        p["analysts"] = get_names(o, "analysts", what)
        if not p["analysts"]:
            refuse("%s.analysts: at least one is needed" % what)
    return p


COMP_FIELDS = ["name", "kind", "query", "script", "inputs", "input", "mask", "epsilon",
               "privacy", "columns", "logs", "limits", "rows", "bounds", "bins"]
SCRIPT_FIELDS = ["script", "inputs", "columns", "logs", "limits"]
OWN = {"sql": ["query", "privacy"], "python": SCRIPT_FIELDS, "r": SCRIPT_FIELDS,
       "synthetic": ["input", "mask", "epsilon", "rows", "bounds", "bins"]}
MASK_FORMATS = ["string", "number", "name", "address", "postcode", "phone", "ssn", "email",
                "date", "timestamp", "iban"]
SYNTH_ROWS_MAX = 10000000
SYNTH_BINS_MAX = 256


def is_num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def parse_synth_extras(v, c, what):
    """A synthetic computation's mask (names, or column: format), rows,
    bounds and bins (docs/room-format.md)."""
    m = v.get("mask")
    if isinstance(m, dict):
        if len(m) > LIST_MAX:
            refuse("%s.mask: too many columns" % what)
        for col, f in m.items():
            if not isinstance(f, str) or f not in MASK_FORMATS:
                refuse("%s.mask: unknown mask format" % what)
        c["mask"] = list(m.keys())
        c["mask_fmt"] = dict(m)
    else:
        c["mask"] = get_names(v, "mask", what)
        c["mask_fmt"] = {}
    if "rows" in v:
        r = v["rows"]
        if not is_int(r) or not 1 <= r <= SYNTH_ROWS_MAX:
            refuse("%s.rows: out of range" % what)
    c["synth_cols"] = {}
    b = v.get("bounds", {})
    if not isinstance(b, dict):
        refuse("%s.bounds: expected an object" % what)
    for col, x in b.items():
        if (not isinstance(x, list) or len(x) != 2 or not is_num(x[0]) or not is_num(x[1])
                or not x[0] < x[1] or not abs(x[0]) < 1e15 or not abs(x[1]) < 1e15):
            refuse("%s.bounds: expected [lo, hi]" % what)
        c["synth_cols"][col] = True
    n = v.get("bins", {})
    if not isinstance(n, dict):
        refuse("%s.bins: expected an object" % what)
    for col, x in n.items():
        if not is_int(x) or not 1 <= x <= SYNTH_BINS_MAX:
            refuse("%s.bins: out of range" % what)
        c["synth_cols"][col] = True


def parse_column_type(c, cw):
    t = get_str(c, "type", True, 64, cw)
    if t not in ("string", "integer", "float"):
        refuse("%s.type: unknown type" % cw)
    get_bool(c, "nullable", True, cw)
    f = get_str(c, "format", False, 64, cw)
    if f is not None:
        if t != "string":
            refuse("%s.format: only string columns take a format" % cw)
        if f not in ("email", "date", "sha256"):
            refuse("%s.format: unknown format" % cw)
    return t


def parse_script_columns(v, what):
    """A python/r computation's declared tabular result: [(name, type)]."""
    cols = get_array(v, "columns", False, COLUMNS_MAX, what)
    if cols is None:
        return []
    if not cols:
        refuse("%s.columns: a tabular result needs at least one column" % what)
    out = []
    for j, c in enumerate(cols):
        cw = "%s.columns[%d]" % (what, j)
        cn = parse_named(c, ["name", "type", "nullable", "format", "allow"], cw)
        allow = get_array(c, "allow", False, 4, cw) or []
        for x in allow:
            if x not in ("group", "aggregate", "join", "minmax"):
                refuse("%s.allow: unknown permission" % cw)
        if len(set(allow)) != len(allow):
            refuse("%s.allow: a permission is listed twice" % cw)
        t = parse_column_type(c, cw)
        if allow:
            refuse("%s.allow: a script's result columns take no allow" % cw)
        if any(ascii_fold(x) == ascii_fold(cn) for x, _ in out):
            refuse("%s.name: column names are unique, case-insensitively" % cw)
        out.append((cn, t))
    return out


def parse_computation(v, what):
    name = parse_named(v, COMP_FIELDS, what)
    kind = get_str(v, "kind", True, 64, what)
    if kind not in OWN:
        refuse("%s.kind: unknown kind" % what)
    for f in COMP_FIELDS[2:]:
        if f not in OWN[kind] and f in v:
            refuse("%s.%s: not a field of %s computations" % (what, f, kind))
    c = {"name": name, "kind": kind, "inputs": [], "k": 0, "epsilon": 0, "bounds": {}}
    if kind == "sql":
        c["query"] = get_str(v, "query", True, QUERY_MAX, what)
        if "privacy" in v:
            p = v["privacy"]
            fields(p, ["min_rows_aggregated", "epsilon", "bounds"], what + ".privacy")
            if "min_rows_aggregated" in p:
                k = p["min_rows_aggregated"]
                if not is_int(k) or not 0 <= k <= MIN_ROWS_MAX:
                    refuse("%s.privacy.min_rows_aggregated: out of range" % what)
                c["k"] = k
            if "epsilon" in p:
                c["epsilon"] = parse_amount(p["epsilon"], DP_EPSILON_MAX,
                                            what + ".privacy.epsilon")
            if "bounds" in p:
                c["bounds"] = parse_bounds(p["bounds"], what + ".privacy.bounds")
            if c["bounds"] and not c["epsilon"]:
                refuse("%s.privacy.bounds: bounds need epsilon" % what)
    elif kind in ("python", "r"):
        get_str(v, "script", True, SCRIPT_MAX, what)
        c["inputs"] = get_names(v, "inputs", what)
        c["columns"] = parse_script_columns(v, what)
        logs = get_str(v, "logs", False, 64, what)
        if logs is not None and logs not in ("never", "on_error", "always"):
            refuse("%s.logs: unknown value" % what)
        if "limits" in v:
            lim = v["limits"]
            fields(lim, list(SCRIPT_LIMITS), what + ".limits")
            for f, cap in SCRIPT_LIMITS.items():
                low = 16 if f == "memory_mb" else 1
                if f in lim and (not is_int(lim[f]) or not low <= lim[f] <= cap):
                    refuse("%s.limits.%s: out of range" % (what, f))
    else:
        c["input"] = get_str(v, "input", True, NAME_MAX + 64, what)
        c["inputs"] = [c["input"]]
        parse_synth_extras(v, c, what)
        if "epsilon" not in v:
            refuse("%s.epsilon: missing" % what)
        e = v["epsilon"]
        if (isinstance(e, bool) or not isinstance(e, (int, float)) or not float(e) > 0 or
                not math.isfinite(float(e)) or float(e) > EPSILON_MAX):
            refuse("%s.epsilon: out of range" % what)
    return c


def parse_participant(v, what):
    fields(v, ["email", "key", "owner_of", "analyst_of"], what)
    email = get_str(v, "email", True, EMAIL_MAX, what)
    if not email_plausible(email):
        refuse("%s.email: not plausible" % what)
    key = parse_key(get_str(v, "key", True, 256, what))
    if key is None:
        refuse("%s.key: not an ed25519 public key" % what)
    return {"email": email, "key": key, "owner_of": get_names(v, "owner_of", what),
            "analyst_of": get_names(v, "analyst_of", what)}


def validate(d):
    dsn = [x["name"] for x in d["datasets"]]
    cn = [x["name"] for x in d["computations"]]
    allnames = dsn + cn
    folded = [ascii_fold(x) for x in allnames]
    if len(set(folded)) != len(folded):
        refuse("dataset and computation names are unique, case-insensitively")
    ps = d["participants"]
    if len({ascii_fold(p["email"]) for p in ps}) != len(ps):
        refuse("participant emails are unique")
    if len({p["key"] for p in ps}) != len(ps):
        refuse("participant keys are unique")
    for p in ps:
        if any(x not in dsn for x in p["owner_of"]):
            refuse("owner_of names no dataset")
        if any(x not in cn for x in p["analyst_of"]):
            refuse("analyst_of names no computation")
    for x in dsn:
        if not any(x in p["owner_of"] for p in ps):
            refuse("dataset %s has no owner" % x)
    emails = [p["email"] for p in ps]
    for x in d["datasets"]:
        pol = x["policy"]
        if pol and pol["analysts"] and any(a not in emails for a in pol["analysts"]):
            refuse("dataset %s: auto_approve names a non-participant" % x["name"])
    for x in cn:
        if not any(x in p["analyst_of"] for p in ps):
            refuse("computation %s has no analyst" % x)
    dsd = {x["name"]: x for x in d["datasets"]}
    cd = {x["name"]: x for x in d["computations"]}
    for c in d["computations"]:
        if c["kind"] == "sql":
            used = {bfold(x) for x in names_in(c["query"])}
            c["inputs"] = [x for x in allnames if bfold(x.encode()) in used]
            if not c["inputs"]:
                refuse("computation %s: the query reads no dataset or computation" %
                       c["name"])
        for x in c["inputs"]:
            if x not in dsd and x not in cd:
                refuse("computation %s: no dataset or computation %r" % (c["name"], x))
            if c["kind"] == "synthetic" and (
                    dsd[x]["kind"] != "table" if x in dsd
                    else not (cd[x]["kind"] in ("sql", "synthetic") or
                              (cd[x]["kind"] in ("python", "r") and cd[x]["columns"]))):
                refuse("computation %s: input is not a table dataset or an sql or "
                       "synthetic computation" % c["name"])
            if c["kind"] == "sql" and x in dsd and dsd[x]["kind"] == "file":
                refuse("computation %s: the query reads a file dataset" % c["name"])
            if (c["kind"] == "sql" and x in cd and cd[x]["kind"] in ("python", "r") and
                    not cd[x]["columns"]):
                refuse("computation %s: the query reads a python or r result without "
                       "columns" % c["name"])
        # over an upstream result the columns are checked at admission
        # (not a rule of replay)
        if c["kind"] == "synthetic" and c["input"] in dsd:
            ds = dsd[c["input"]]
            for m in c["mask"]:
                if m not in ds["columns"]:
                    refuse("computation %s: mask names no column" % c["name"])
                f = c["mask_fmt"].get(m)
                if f is not None and (f == "number") != (m in ds["numeric"]):
                    refuse("computation %s: mask format does not fit the column" % c["name"])
            for col in c["synth_cols"]:
                if col not in ds["numeric"] or col in c["mask"]:
                    refuse("computation %s: bounds or bins name no synthesised numeric "
                           "column" % c["name"])
    state = {}

    def visit(x):
        if state.get(x) == 2:
            return
        if state.get(x) == 1:
            refuse("dependency cycle through %s" % x)
        state[x] = 1
        for y in cd[x]["inputs"]:
            if y in cd:
                visit(y)
        state[x] = 2

    for x in cn:
        visit(x)
    check_privacy(d, dsd, cd)
    validate_dp(d)



# ---- the privacy rules (privacy.md, "The filtered subset", "Chains") ---------------------

def sql_tokens(query):
    """Tokens of a query as (kind, raw bytes, identifier value or None):
    W word, Q quoted identifier, S string or blob, N number, V variable,
    P punctuation; the same split as names_in."""
    q, n, i, out = query.encode("utf-8"), len(query.encode("utf-8")), 0, []
    while i < n:
        c = q[i]
        s = i
        if c in b" \t\n\v\f\r":
            i += 1
            continue
        if q[i:i + 2] == b"--":
            while i < n and q[i] != 0x0A:
                i += 1
            continue
        if q[i:i + 2] == b"/*":
            e = q.find(b"*/", i + 2)
            i = n if e < 0 else e + 2
            continue
        if c in b"xX" and i + 1 < n and q[i + 1] == 0x27:
            e = q.find(b"'", i + 2)
            if e < 0:
                refuse("unterminated blob literal")
            i = e + 1
            out.append(("S", q[s:i], None))
        elif c in b"'\"`[":
            close = 0x5D if c == 0x5B else c
            j, buf = i + 1, bytearray()
            while True:
                if j >= n:
                    refuse("unterminated literal")
                if q[j] == close:
                    if close != 0x5D and j + 1 < n and q[j + 1] == close:
                        buf.append(close)
                        j += 2
                        continue
                    j += 1
                    break
                buf.append(q[j])
                j += 1
            i = j
            if c == 0x27:
                out.append(("S", q[s:i], None))
            else:
                out.append(("Q", q[s:i], bytes(buf)))
        elif word_start(c):
            j = i
            while j < n and word_byte(q[j]):
                j += 1
            out.append(("W", q[i:j], q[i:j]))
            i = j
        elif is_digit(c) or (c == 0x2E and i + 1 < n and is_digit(q[i + 1])):
            j = i
            while j < n and (is_alpha(q[j]) or is_digit(q[j]) or q[j] in b"._" or
                             (q[j] in b"+-" and q[j - 1] in b"eE")):
                j += 1
            out.append(("N", q[i:j], None))
            i = j
        elif c in b"?:@$#":
            j = i + 1
            while j < n and word_byte(q[j]):
                j += 1
            out.append(("V", q[i:j], None))
            i = j
        else:
            i += 1
            for op in OPS:
                if q[i - 1:i - 1 + len(op)] == op:
                    i = i - 1 + len(op)
                    break
            out.append(("P", q[s:i], None))
    return out


PQ_RESERVED = {bfold(w.encode()) for w in (
    "SELECT FROM WHERE GROUP HAVING ORDER LIMIT OFFSET UNION EXCEPT INTERSECT JOIN INNER "
    "CROSS LEFT RIGHT FULL NATURAL OUTER ON USING AS AND OR NOT IS IN LIKE GLOB BETWEEN "
    "CASE WHEN THEN ELSE END WITH WINDOW VALUES DISTINCT ALL BY ASC DESC COLLATE ESCAPE "
    "FILTER OVER EXISTS NULLS ISNULL NOTNULL REGEXP MATCH").split()}
PQ_SCALAR = {w.encode() for w in (
    "abs coalesce ifnull nullif iif lower upper length substr substring trim ltrim rtrim "
    "round replace instr sign date time datetime julianday strftime unixepoch floor ceil "
    "ceiling trunc typeof min max").split()}
PQ_AGGS = [b"count", b"sum", b"avg", b"total", b"min", b"max"]
PQ_BINOPS = {b"OR", b"AND", b"=", b"==", b"!=", b"<>", b"<", b"<=", b">", b">=", b"||", b"+",
             b"-", b"*", b"/", b"%", b"&", b"|", b"<<", b">>", b"LIKE", b"GLOB", b"BETWEEN",
             b"ESCAPE"}
G, A, J, M = "group", "aggregate", "join", "minmax"
ALL_PERMS = {G, A, J, M}


class PQuery:
    """A port of compute/cmp_pquery.c: only the verdict matters here."""

    def __init__(self, query, src, proj):
        self.t = sql_tokens(query)
        self.src, self.proj, self.i = src, proj, 0
        self.frm, self.alias = [], []
        self.ctx, self.agg = "select", None
        self.items, self.refs, self.saw_agg, self.acc = [], [], False, set(ALL_PERMS)
        self.group, self.grouped = set(), False
        n = len(self.t)
        while n and self.is_(n - 1, b";"):
            n -= 1
        if any(self.is_(k, b";") for k in range(n)):
            refuse("privacy filter: only one statement")
        self.t = self.t[:n]

    def is_(self, i, w):
        if i >= len(self.t):
            return False
        k, raw, _ = self.t[i]
        if k == "P":
            return raw == w
        return k == "W" and bfold(raw) == bfold(w)

    def at(self, w):
        return self.is_(self.i, w)

    def reserved(self, i):
        return i < len(self.t) and self.t[i][0] == "W" and bfold(self.t[i][1]) in PQ_RESERVED

    def ident(self, i):
        if i >= len(self.t) or self.reserved(i) or self.t[i][0] not in "WQ":
            return None
        return self.t[i][2]

    def fail(self, what):
        refuse("privacy filter: " + what)

    def use(self, qual, col):
        cand = []
        if qual is not None:
            f = [k for k, a in enumerate(self.alias) if bfold(a) == bfold(qual)]
            if not f:
                self.fail("no table or alias")
            f = f[-1]
            s = self.src[self.frm[f]]
            if s["kind"] == "table" and bfold(col) not in s["cols"]:
                self.fail("no such column")
        else:
            cand = [k for k in range(len(self.frm)) if self.src[self.frm[k]]["kind"] == "table"
                    and bfold(col) in self.src[self.frm[k]]["cols"]]
            if len(cand) > 1:
                self.fail("ambiguous column")
            if not cand:
                cand = [k for k in range(len(self.frm))
                        if self.src[self.frm[k]]["kind"] != "table"]
                if len(cand) > 1:
                    self.fail("ambiguous column")
            if not cand:
                if self.ctx in ("having", "order") and any(
                        it["named"] and bfold(it["name"]) == bfold(col) for it in self.items):
                    return
                self.fail("no such column")
            f = cand[-1]
        s = self.src[self.frm[f]]
        pc = s["cols"].get(bfold(col)) if s["kind"] == "table" else None
        allow = pc[1] if pc else ALL_PERMS
        if self.ctx == "on":
            need = J
        elif self.agg in (b"min", b"max"):
            need = M
        elif self.agg:
            need = A
        else:
            need = G
        if self.proj:
            self.acc &= allow
        elif need not in allow:
            self.fail("column not allowed here")
        if not self.agg and self.ctx not in ("on", "where"):
            self.refs.append((f, bfold(pc[0] if pc else col)))

    def paren_list(self):
        self.i += 1
        if self.at(b"SELECT") or self.at(b"WITH") or self.at(b"VALUES"):
            self.fail("subquery")
        if self.at(b")"):
            self.fail("empty list")
        while True:
            self.expr()
            if self.at(b","):
                self.i += 1
                continue
            if not self.at(b")"):
                self.fail("')' expected")
            self.i += 1
            return

    def call(self):
        name = self.i
        nm = bfold(self.t[name][1])
        opn = name + 1
        depth, commas, close = 0, 0, opn
        while close < len(self.t):
            if self.is_(close, b"("):
                depth += 1
            elif self.is_(close, b")"):
                depth -= 1
                if depth == 0:
                    break
            elif depth == 1 and self.is_(close, b","):
                commas += 1
            close += 1
        fn = nm if nm in PQ_AGGS else None
        if fn in (b"min", b"max") and commas > 0:
            fn = None
        if nm in (b"group_concat", b"string_agg", b"json_group_array", b"json_group_object"):
            self.fail("aggregate not allowed")
        if fn is None and nm not in PQ_SCALAR:
            self.fail("function not allowed")
        if fn is not None:
            if self.proj:
                self.fail("aggregate in a projection")
            if self.agg:
                self.fail("nested aggregate")
            if self.ctx not in ("select", "having", "order"):
                self.fail("aggregate not allowed here")
            self.saw_agg = True
            self.i = opn + 1
            distinct = False
            if self.at(b"DISTINCT"):
                distinct = True
                self.i += 1
            elif self.at(b"ALL"):
                self.i += 1
            if self.at(b"*") and fn == b"count" and not distinct:
                self.i += 1
            else:
                s = self.i
                one = ((self.ident(s) is not None and self.is_(s + 1, b")")) or
                       (self.ident(s) is not None and self.is_(s + 1, b".") and
                        self.ident(s + 2) is not None and self.is_(s + 3, b")")))
                if not one:
                    self.fail("the argument of an aggregate must be one column")
                self.agg = fn
                self.expr()
                self.agg = None
            if not self.at(b")"):
                self.fail("')' expected")
            self.i += 1
        else:
            self.i = opn
            if self.is_(opn + 1, b")"):
                self.i = opn + 2
            else:
                self.paren_list()
        if self.at(b"FILTER") or self.at(b"OVER"):
            self.fail("FILTER or OVER")

    def primary(self):
        if self.i >= len(self.t):
            self.fail("expression missing")
        k = self.t[self.i][0]
        if self.at(b"-") or self.at(b"+") or self.at(b"~") or self.at(b"NOT"):
            self.i += 1
            return self.primary()
        if k in "NS" or self.at(b"NULL") or self.at(b"TRUE") or self.at(b"FALSE"):
            self.i += 1
            return
        if k == "V":
            self.fail("parameters")
        if self.at(b"("):
            self.i += 1
            if self.at(b"SELECT") or self.at(b"WITH") or self.at(b"VALUES"):
                self.fail("subquery")
            self.expr()
            if self.at(b","):
                self.fail("row values")
            if not self.at(b")"):
                self.fail("')' expected")
            self.i += 1
            return
        if self.at(b"EXISTS"):
            self.fail("EXISTS")
        if self.at(b"CASE"):
            self.i += 1
            if not self.at(b"WHEN"):
                self.expr()
            if not self.at(b"WHEN"):
                self.fail("WHEN expected")
            while self.at(b"WHEN"):
                self.i += 1
                self.expr()
                if not self.at(b"THEN"):
                    self.fail("THEN expected")
                self.i += 1
                self.expr()
            if self.at(b"ELSE"):
                self.i += 1
                self.expr()
            if not self.at(b"END"):
                self.fail("END expected")
            self.i += 1
            return
        if self.at(b"CAST"):
            self.i += 1
            if not self.at(b"("):
                self.fail("'(' expected")
            self.i += 1
            self.expr()
            if not self.at(b"AS"):
                self.fail("AS expected")
            self.i += 1
            if not (any(self.at(w) for w in (b"INTEGER", b"INT", b"REAL", b"TEXT", b"NUMERIC",
                                             b"FLOAT")) and self.is_(self.i + 1, b")")):
                self.fail("CAST type")
            self.i += 2
            return
        a = self.ident(self.i)
        if a is not None and self.is_(self.i + 1, b"(") and k == "W":
            return self.call()
        if a is not None and self.is_(self.i + 1, b"."):
            if self.is_(self.i + 2, b"*"):
                self.fail("t.*")
            b = self.ident(self.i + 2)
            if b is None:
                self.fail("column expected")
            if self.is_(self.i + 3, b"."):
                self.fail("schema-qualified")
            self.i += 3
            return self.use(a, b)
        if a is not None:
            self.i += 1
            return self.use(None, a)
        self.fail("expression expected")

    def expr(self):
        self.primary()
        while True:
            if self.at(b"->") or self.at(b"->>"):
                self.fail("JSON operators")
            if self.at(b"COLLATE"):
                if not any(self.is_(self.i + 1, w) for w in (b"NOCASE", b"BINARY", b"RTRIM")):
                    self.fail("COLLATE")
                self.i += 2
                continue
            if self.at(b"ISNULL") or self.at(b"NOTNULL"):
                self.i += 1
                continue
            if self.at(b"NOT") and self.is_(self.i + 1, b"NULL"):
                self.i += 2
                continue
            if self.at(b"NOT") and any(self.is_(self.i + 1, w)
                                       for w in (b"LIKE", b"GLOB", b"BETWEEN", b"IN")):
                self.i += 1
            if self.at(b"IS"):
                self.i += 1
                if self.at(b"NOT"):
                    self.i += 1
                if self.at(b"DISTINCT"):
                    if not self.is_(self.i + 1, b"FROM"):
                        self.fail("IS DISTINCT FROM")
                    self.i += 2
                self.primary()
                continue
            if self.at(b"IN"):
                self.i += 1
                if not self.at(b"("):
                    self.fail("IN list")
                self.paren_list()
                continue
            if self.at(b"REGEXP") or self.at(b"MATCH"):
                self.fail("REGEXP")
            if self.i < len(self.t) and any(self.is_(self.i, w) for w in PQ_BINOPS):
                self.i += 1
                self.primary()
                continue
            return

    def start(self):
        self.refs, self.saw_agg, self.acc = [], False, set(ALL_PERMS)

    def teq(self, a, ae, b, be):
        if ae - a != be - b:
            return False
        return all(self.t[a + k][0] == self.t[b + k][0] and
                   bfold(self.t[a + k][1]) == bfold(self.t[b + k][1]) for k in range(ae - a))

    def bare(self, refs):
        if not self.proj and any(r not in self.group for r in refs):
            self.fail("bare column")

    def parse_from(self):
        while True:
            if self.at(b"("):
                self.fail("subquery in FROM")
            nm = self.ident(self.i)
            if nm is None:
                self.fail("table name expected")
            self.i += 1
            if self.at(b"(") or self.at(b"."):
                self.fail("table function or schema")
            s = [k for k, x in enumerate(self.src) if bfold(x["name"].encode()) == bfold(nm)]
            if not s:
                self.fail("not a dataset or computation")
            s = s[0]
            if s in self.frm:
                self.fail("read twice")
            if self.src[s]["kind"] == "opaque":
                self.fail("opaque upstream")
            if self.proj and self.src[s]["kind"] == "aggregate":
                self.fail("projection of a filtered computation")
            if len(self.frm) == SQL_INPUTS_MAX:
                self.fail("too many tables")
            al = nm
            if self.at(b"AS"):
                self.i += 1
                al = self.ident(self.i)
                if al is None:
                    self.fail("alias expected")
                self.i += 1
            elif self.ident(self.i) is not None:
                al = self.ident(self.i)
                self.i += 1
            if any(bfold(a) == bfold(al) for a in self.alias):
                self.fail("alias used twice")
            self.frm.append(s)
            self.alias.append(al)
            if len(self.frm) > 1 and self.at(b"ON"):
                self.i += 1
                self.ctx = "on"
                self.expr()
            elif len(self.frm) > 1 and self.at(b"USING"):
                self.i += 1
                if not self.at(b"("):
                    self.fail("'(' expected")
                self.i += 1
                self.ctx = "on"
                while True:
                    c = self.ident(self.i)
                    if c is None:
                        self.fail("column expected")
                    self.use(self.alias[-1], c)
                    found = False
                    for k in range(len(self.frm) - 1):
                        sk = self.src[self.frm[k]]
                        if sk["kind"] != "table" or bfold(c) in sk["cols"]:
                            self.use(self.alias[k], c)
                            found = True
                            break
                    if not found:
                        self.fail("no earlier table has the column")
                    self.i += 1
                    if self.at(b","):
                        self.i += 1
                        continue
                    break
                if not self.at(b")"):
                    self.fail("')' expected")
                self.i += 1
            if self.at(b","):
                self.i += 1
                continue
            if any(self.at(w) for w in (b"LEFT", b"RIGHT", b"FULL", b"NATURAL")):
                self.fail("outer join")
            if self.at(b"INNER") or self.at(b"CROSS"):
                self.i += 1
            if self.at(b"JOIN"):
                self.i += 1
                continue
            return

    def select_list(self, end):
        while True:
            if len(self.items) == SQL_COLS_MAX:
                self.fail("too many columns")
            it = {"s": self.i, "named": False, "name": b"", "key": False, "plain": None}
            self.start()
            self.ctx = "select"
            self.expr()
            it["e"], it["agg"], it["allow"], it["out"] = self.i, self.saw_agg, self.acc, \
                list(self.refs)
            ln = it["e"] - it["s"]
            if ln == 1 and self.ident(it["s"]) is not None and len(self.refs) == 1:
                it["plain"], it["name"] = self.refs[0], self.ident(it["s"])
            elif (ln == 3 and self.ident(it["s"]) is not None and self.is_(it["s"] + 1, b".") and
                  self.ident(it["s"] + 2) is not None and len(self.refs) == 1):
                it["plain"], it["name"] = self.refs[0], self.ident(it["s"] + 2)
            if self.at(b"AS"):
                self.i += 1
                if self.i < len(self.t) and self.t[self.i][0] == "S":
                    it["name"] = self.t[self.i][1]
                elif self.ident(self.i) is not None:
                    it["name"] = self.ident(self.i)
                else:
                    self.fail("alias expected")
                it["named"] = True
                self.i += 1
            elif self.i < end and self.ident(self.i) is not None:
                it["name"], it["named"] = self.ident(self.i), True
                self.i += 1
            self.items.append(it)
            if self.at(b","):
                self.i += 1
                continue
            if self.i != end:
                self.fail("',' or FROM expected")
            return

    def terms(self, ctx, order):
        while True:
            s = self.i
            self.start()
            self.ctx = ctx
            pos = self.i < len(self.t) and self.t[self.i][0] == "N"
            self.expr()
            e = self.i
            if pos and e == s + 1:
                raw = self.t[s][1]
                if not raw.isdigit() or not 1 <= int(raw) <= len(self.items):
                    self.fail("not a result position")
                if ctx == "group":
                    it = self.items[int(raw) - 1]
                    if it["agg"]:
                        self.fail("GROUP BY an aggregate")
                    it["key"] = True
                    if it["plain"] is not None:
                        self.group.add(it["plain"])
            elif ctx == "group":
                if len(self.refs) == 1 and (e - s == 1 or
                                            (e - s == 3 and self.is_(s + 1, b"."))):
                    self.group.add(self.refs[0])
                for it in self.items:
                    if self.teq(s, e, it["s"], it["e"]):
                        it["key"] = True
            else:
                if not any(self.teq(s, e, it["s"], it["e"]) for it in self.items):
                    self.bare(self.refs)
            if order and (self.at(b"ASC") or self.at(b"DESC")):
                self.i += 1
            if order and self.at(b"NULLS"):
                if not (self.is_(self.i + 1, b"FIRST") or self.is_(self.i + 1, b"LAST")):
                    self.fail("NULLS")
                self.i += 2
            if self.at(b","):
                self.i += 1
                continue
            return

    def parse(self):
        if self.at(b"WITH") or self.at(b"VALUES") or not self.at(b"SELECT"):
            self.fail("not a SELECT of the subset")
        self.i += 1
        if self.at(b"DISTINCT") or self.at(b"ALL"):
            self.i += 1
        lst, depth, fr = self.i, 0, None
        for k in range(lst, len(self.t)):
            if self.is_(k, b"("):
                depth += 1
            elif self.is_(k, b")"):
                depth -= 1
            elif depth == 0 and self.is_(k, b"FROM") and not (
                    k >= 2 and self.is_(k - 1, b"DISTINCT") and
                    (self.is_(k - 2, b"IS") or self.is_(k - 2, b"NOT"))):
                fr = k
                break
        if fr is None:
            self.fail("FROM expected")
        self.i = fr + 1
        self.parse_from()
        after = self.i
        self.i = lst
        self.select_list(fr)
        self.i = after
        if self.at(b"WHERE"):
            self.i += 1
            self.start()
            self.ctx = "where"
            self.expr()
        if self.at(b"GROUP"):
            if self.proj or not self.is_(self.i + 1, b"BY"):
                self.fail("GROUP BY")
            self.i += 2
            self.grouped = True
            self.terms("group", False)
        if not self.proj:
            if not self.grouped and not any(it["agg"] for it in self.items):
                self.fail("must aggregate")
            for it in self.items:
                if not it["key"]:
                    self.bare(it["out"])
        if self.at(b"HAVING"):
            if self.proj:
                self.fail("HAVING in a projection")
            self.i += 1
            self.start()
            self.ctx = "having"
            self.expr()
            self.bare(self.refs)
        if any(self.at(w) for w in (b"WINDOW", b"UNION", b"INTERSECT", b"EXCEPT")):
            self.fail("WINDOW or compound")
        if self.at(b"ORDER"):
            if not self.is_(self.i + 1, b"BY"):
                self.fail("ORDER BY")
            self.i += 2
            self.terms("order", True)
        if self.at(b"LIMIT"):
            self.i += 1
            for _ in (0, 1):
                if self.i >= len(self.t) or self.t[self.i][0] != "N":
                    self.fail("LIMIT")
                self.i += 1
                if not (self.at(b"OFFSET") or self.at(b",")):
                    break
                self.i += 1
        if self.i < len(self.t):
            self.fail("unexpected text")

    def projection(self):
        names, units = [], []
        for it in self.items:
            if not it["named"] and it["plain"] is None:
                self.fail("unnamed computed column")
            if any(bfold(x) == bfold(it["name"]) for x in names):
                self.fail("duplicate column")
            names.append(it["name"])
        for f, s in enumerate(self.frm):
            src = self.src[s]
            if not src["units"]:
                self.fail("no unit")
            for u in src["units"]:
                hit = [it for it in self.items if it["plain"] == (f, bfold(u))]
                if not hit:
                    self.fail("unit not shown")
                units.append(hit[0]["name"])
        cols = {bfold(it["name"]): (it["name"], it["allow"]) for it in self.items}
        return cols, units


def check_privacy(d, dsd, cd):
    order, seen = [], set()

    def post(x):
        if x in seen:
            return
        seen.add(x)
        for y in cd[x]["inputs"]:
            if y in cd:
                post(y)
        order.append(x)

    for c in d["computations"]:
        post(c["name"])
    desc = {}
    for x in dsd.values():
        if x["kind"] == "table":
            desc[x["name"]] = {
                "kind": "table", "units": [x["unit"].encode()] if x["unit"] else [],
                "cols": {bfold(c.encode()): (c.encode(), x["allow"][c]) for c in x["columns"]}}
    for name in order:
        c = cd[name]
        if c["kind"] != "sql":
            desc[name] = {"kind": "opaque"}
            continue
        src = []
        for x in c["inputs"]:
            e = dict(desc[x])
            e["name"] = x
            src.append(e)
        if c["k"] > 0:
            PQuery(c["query"], src, False).parse()
            desc[name] = {"kind": "aggregate"}
            continue
        try:
            p = PQuery(c["query"], src, True)
            p.parse()
            cols, units = p.projection()
            desc[name] = {"kind": "table", "cols": cols, "units": units}
        except Refused:
            desc[name] = {"kind": "opaque"}


def datasets_read(d, comp):
    """Dataset names a computation reads, directly or through upstream
    computations (rules.md, "Datasets a run reads")."""
    cd = {x["name"]: x for x in d["computations"]}
    dsn = {x["name"] for x in d["datasets"]}
    out, seen = set(), set()

    def walk(c):
        for x in c["inputs"]:
            if x in dsn:
                out.add(x)
            elif x in cd and x not in seen:
                seen.add(x)
                walk(cd[x])

    walk(comp)
    return out


# ---- the state and the events (rules.md) ----------------------------------------------


# ---- requests (rules.md "Requests", room-format.md "Requests") ---------------------

REQUESTS_MAX = 100000
REQUEST_COMPUTATIONS_MAX = 16
TITLE_MAX = 200


def request_merge(defobj, text):
    """The request document merged into the current definition object:
    (title, names, merged definition object, parsed definition)."""
    o = strict_json(text.encode("utf-8"))
    fields(o, ["title", "description", "computations"], "request")
    title = get_str(o, "title", True, TITLE_MAX, "request")
    if title == "":
        refuse("request.title: empty")
    get_str(o, "description", False, DESCRIPTION_MAX, "request")
    comps = get_array(o, "computations", True, REQUEST_COMPUTATIONS_MAX, "request")
    if not comps:
        refuse("request.computations: at least one is needed")
    m = json.loads(json.dumps(defobj))  # a deep copy
    m.setdefault("computations", [])
    names = []
    for i, c in enumerate(comps):
        what = "request.computations[%d]" % i
        if not isinstance(c, dict):
            refuse("%s: expected an object" % what)
        name = get_str(c, "name", True, NAME_MAX, what)
        names.append(name)
        analysts = get_names(c, "analysts", what)
        if not analysts:
            refuse("%s.analysts: at least one is needed" % what)
        for a in analysts:
            p = next((p for p in m["participants"] if p.get("email") == a), None)
            if p is None:
                refuse("%s.analysts: %r is not a participant of the room" % (what, a))
            p.setdefault("analyst_of", []).append(name)
        m["computations"].append({k: v for k, v in c.items() if k != "analysts"})
    return title, names, m, parse_def_obj(m)


def affected_owners(d, names):
    """Keys of the participants owning a dataset the named computations
    read, in participant order."""
    used = set()
    for n in names:
        c = next(c for c in d["computations"] if c["name"] == n)
        used |= datasets_read(d, c)
    return [p["key"] for p in d["participants"] if any(x in used for x in p["owner_of"])]


class Room:
    def __init__(self, daemon_key):
        self.daemon = daemon_key
        self.status = "none"
        self.size = 0
        self.creator = None
        self.d = None
        self.text = None
        self.prov = {}  # dataset -> sha256 (present only; append: the union hash)
        self.drops = {}  # append dataset -> [(file, sha256)] in drop order
        self.spent = {}  # dataset -> epsilon spent, in millionths (the ledger)
        self.runs = {}  # id -> dict
        self.devs = {}  # development run id -> dict (rules.md "Development runs")
        self.obj = None  # the current definition as a JSON object
        self.requests = {}  # id -> dict
        self.version = 0
        self.vsha = None

    def participant(self, k):
        if self.status == "none":
            refuse("the room does not exist yet")
        if k != self.creator and not any(p["key"] == k for p in self.d["participants"]):
            refuse("actor is not a participant of this room")

    def creator_only(self, k):
        self.participant(k)
        if k != self.creator:
            refuse("actor is not the creator of the room")

    def published(self):
        if self.status != "published":
            refuse("the room is %s" % self.status)

    def role(self, k, what, name):
        for p in self.d["participants"]:
            if p["key"] == k and name in p[what]:
                return
        refuse("actor is not %s %s" % (what, name))

    def body(self, b, spec):
        if not isinstance(b, dict):
            refuse("body is not a map")
        if sorted(b) != sorted(spec):
            refuse("body: fields %s, expected %s" % (sorted(b), sorted(spec)))
        for k, (t, mx) in spec.items():
            v = b[k]
            if t == "str":
                if not isinstance(v, str) or "\0" in v:
                    refuse("body.%s: expected a string without NUL" % k)
                if ubytes(v) > mx:
                    refuse("body.%s: too long" % k)
            elif t == "uint":
                if not is_int(v) or v < 0:
                    refuse("body.%s: expected an unsigned integer" % k)
            elif t == "bin32":
                if not isinstance(v, bytes) or len(v) != 32:
                    refuse("body.%s: expected 32 bytes" % k)
            elif t == "map" and not isinstance(v, dict):
                refuse("body.%s: expected a map" % k)
            elif t == "array" and not isinstance(v, list):
                refuse("body.%s: expected an array" % k)

    def definition(self, b):
        self.body(b, {"definition": ("str", DEF_BYTES_MAX)})
        d = parse_def(b["definition"])
        if any(p["key"] == self.daemon for p in d["participants"]):
            refuse("definition: a participant key is the daemon's key")
        return d

    def check_edit(self, k):
        self.creator_only(k)
        if self.status != "draft":
            refuse("the definition can only change while draft")

    def check_provision(self, k, ds):
        self.participant(k)
        self.published()
        if not any(x["name"] == ds for x in self.d["datasets"]):
            refuse("no dataset named %r" % ds)
        self.role(k, "owner_of", ds)

    def apply(self, e):
        t, k, b = e["type"], e["actor"], e["body"]
        if e["seq"] != self.size:
            refuse("event seq %d but room has %d events" % (e["seq"], self.size))
        h = getattr(self, "on_" + t.replace(".", "_"), None) if t in TYPES else None
        if h is None:
            refuse("unknown event type")
        if self.status == "none" and t != "room.created":
            refuse("the room does not exist yet")
        h(k, b)
        self.size += 1

    def on_room_created(self, k, b):
        if self.status != "none":
            refuse("the room already exists")
        if k == self.daemon:
            refuse("the daemon cannot create rooms")
        d = self.definition(b)
        self.creator, self.status, self.d, self.text = k, "draft", d, b["definition"]
        self.obj = strict_json(self.text.encode("utf-8"))

    def on_room_draft_saved(self, k, b):
        self.check_edit(k)
        self.d = self.definition(b)
        self.text = b["definition"]
        self.obj = strict_json(self.text.encode("utf-8"))

    def on_room_published(self, k, b):
        self.check_edit(k)
        self.body(b, {"definition_sha256": ("bin32", 0)})
        if b["definition_sha256"] != hashlib.sha256(self.text.encode("utf-8")).digest():
            refuse("definition_sha256 does not match the current definition")
        self.status = "published"
        self.version, self.vsha = 1, b["definition_sha256"]

    def on_room_stopped(self, k, b):
        self.creator_only(k)
        if self.status not in ("draft", "published"):
            refuse("the room is already %s" % self.status)
        self.body(b, {"reason": ("str", REASON_MAX)})
        self.status = "stopped"

    def on_dataset_provisioned(self, k, b):
        self.participant(k)
        self.body(b, {"blob": ("str", BLOB_MAX), "bytes": ("uint", 0),
                      "dataset": ("str", NAME_MAX), "file": ("str", FILE_MAX),
                      "rows": ("uint", 0), "sha256": ("bin32", 0),
                      "stats_sha256": ("bin32", 0)})
        self.check_provision(k, b["dataset"])
        if not b["blob"]:
            refuse("body.blob: empty blob id")
        if not file_name_ok(b["file"]):
            refuse("body.file: not a file name")
        if self.is_append(b["dataset"]):
            self.add_drop(b)
            return
        self.prov[b["dataset"]] = b["sha256"]

    # Drops (rules.md "Drops"): an append dataset is the list of its drops,
    # (file, sha256) in drop order; its sha256 is the union hash.
    def is_append(self, name):
        return any(x["name"] == name and x["append"] for x in self.d["datasets"])

    def set_union(self, name):
        dl = self.drops.get(name, [])
        if dl:
            self.prov[name] = hashlib.sha256(b"".join(h for _, h in dl)).digest()
        else:
            self.prov.pop(name, None)

    def add_drop(self, b):
        f, h, name = b["file"], b["sha256"], b["dataset"]
        dl = self.drops.setdefault(name, [])
        old = [i for i, (g, _) in enumerate(dl) if g == f]
        if old and dl[old[0]][1] == h:
            refuse("the same drop is already in (counted once)")
        if not old and len(dl) >= DROPS_MAX:
            refuse("too many drops")
        if old:
            del dl[old[0]]
        dl.append((f, h))
        self.set_union(name)

    def on_dataset_deprovisioned(self, k, b):
        self.participant(k)
        if isinstance(b, dict) and "file" in b:
            self.body(b, {"dataset": ("str", NAME_MAX), "file": ("str", FILE_MAX)})
            self.check_provision(k, b["dataset"])
            if not self.is_append(b["dataset"]):
                refuse("dataset is not an append dataset")
            dl = self.drops.get(b["dataset"], [])
            at = [i for i, (g, _) in enumerate(dl) if g == b["file"]]
            if not at:
                refuse("no such drop")
            del dl[at[0]]
            self.set_union(b["dataset"])
            return
        self.body(b, {"dataset": ("str", NAME_MAX)})
        self.check_provision(k, b["dataset"])
        if b["dataset"] not in self.prov:
            refuse("dataset is not provisioned")
        if self.is_append(b["dataset"]):
            refuse("an append dataset is withdrawn one drop at a time")
        del self.prov[b["dataset"]]

    def on_run_requested(self, k, b):
        self.participant(k)
        spec = {"computation": ("str", NAME_MAX), "run": ("str", 32)}
        if isinstance(b, dict) and "epsilon" in b:
            spec["epsilon"] = ("str", 32)
        self.body(b, spec)
        self.published()
        comp = next((c for c in self.d["computations"] if c["name"] == b["computation"]),
                    None)
        if comp is None:
            refuse("no computation named %r" % b["computation"])
        self.role(k, "analyst_of", comp["name"])
        reads = datasets_read(self.d, comp)
        e = comp["epsilon"]
        budget = {x["name"]: x["budget"] for x in self.d["datasets"]}
        for x in reads:
            if e and self.spent.get(x, 0) + e > budget[x]:
                refuse("computation %s would spend epsilon past the budget of %s" %
                       (comp["name"], x))
        if self.d["require_provisioned"]:
            req = {x["name"] for x in self.d["datasets"] if x["required"]}
            if any(x in req and x not in self.prov for x in reads):
                refuse("computation needs datasets not provisioned")
        if bool(e) != ("epsilon" in b):
            refuse("body.epsilon: present exactly for a differentially private computation")
        if e and b["epsilon"] != epsilon_text(e):
            refuse("body.epsilon: %r but the computation spends %r" %
                   (b["epsilon"], epsilon_text(e)))
        r = b["run"]
        if len(r) != 32 or any(c not in "0123456789abcdef" for c in r):
            refuse("body.run: not a run id (32 lowercase hex characters)")
        if r in self.runs or r in self.devs:
            refuse("run already exists")
        if len(self.runs) >= RUNS_MAX:
            refuse("too many runs")
        self.runs[r] = {"computation": comp["name"], "state": "queued",
                        "inputs": {x: self.prov.get(x) for x in reads}}
        for x in reads:
            self.spent[x] = self.spent.get(x, 0) + e

    def daemon_run(self, k, b, spec):
        if k != self.daemon:
            refuse("actor is not the daemon")
        if self.status not in ("published", "stopped"):
            refuse("runs are reported only while published or stopped")
        self.body(b, spec)
        r = self.runs.get(b["run"])
        if r is None:
            refuse("no run %s" % b["run"])
        if r["computation"] != b["computation"]:
            refuse("run is of another computation")
        if r["state"] != "queued":
            refuse("run has already finished")
        return r

    def script_comp(self, b):
        """The python/r computation a daemon run body names, or None."""
        if not isinstance(b, dict) or not isinstance(b.get("computation"), str):
            return None
        # a preview run's computation is in its request's merged definition
        r = self.runs.get(b["run"]) if isinstance(b.get("run"), str) else None
        comps = [r["comp"]] if r is not None and "comp" in r else self.d["computations"]
        c = next((c for c in comps if c["name"] == b["computation"]), None)
        return c if c is not None and c["kind"] in ("python", "r") else None

    def on_run_completed(self, k, b):
        spec = {
            "computation": ("str", NAME_MAX), "duration_ms": ("uint", 0), "inputs": ("map", 0),
            "result_blob": ("str", BLOB_MAX), "result_bytes": ("uint", 0),
            "result_sha256": ("bin32", 0), "rows": ("uint", 0), "run": ("str", 32),
            "schema": ("array", 0), "suppressed": ("uint", 0)}
        sc = self.script_comp(b) if k == self.daemon else None
        if sc is not None:
            spec.update({"files": ("uint", 0), "logs_blob": ("str", BLOB_MAX),
                         "logs_sha256": ("bin32", 0)})
        r = self.daemon_run(k, b, spec)
        ins = b["inputs"]
        if sorted(ins) != sorted(r["inputs"]):
            refuse("body.inputs: not exactly the datasets the run reads")
        for x, want in r["inputs"].items():
            got = ins[x]
            if want is None:
                if got is not None:
                    refuse("body.inputs.%s: must be nil" % x)
            elif not isinstance(got, bytes) or got != want:
                refuse("body.inputs.%s: not the sha256 provisioned when requested" % x)
        if not b["result_blob"]:
            refuse("body.result_blob: empty blob id")
        if sc is not None and not b["logs_blob"]:
            refuse("body.logs_blob: empty blob id")
        s = b["schema"]
        if sc is not None and not sc["columns"]:
            if s:
                refuse("body.schema: must be empty (no declared columns)")
        else:
            self.check_schema(s)
            if sc is not None and [tuple(c) for c in s] != sc["columns"]:
                refuse("body.schema: not the declared columns")
        if sc is not None:
            if b["suppressed"] != 0:
                refuse("body.suppressed: must be 0 for a script")
            if not sc["columns"] and b["rows"] != 0:
                refuse("body.rows: must be 0 without declared columns")
        r["state"] = "done"
        r["result_sha256"] = b["result_sha256"]

    def check_schema(self, s):
        if not 1 <= len(s) <= RESULT_COLS_MAX:
            refuse("body.schema: 1 to 256 columns")
        seen = set()
        for c in s:
            if (not isinstance(c, list) or len(c) != 2 or not isinstance(c[0], str) or
                    not isinstance(c[1], str)):
                refuse("body.schema: expected [name, type]")
            if not 1 <= ubytes(c[0]) <= RESULT_COL_BYTES_MAX or "\0" in c[0]:
                refuse("body.schema: bad column name")
            if c[1] not in ("string", "integer", "float"):
                refuse("body.schema: bad type")
            if ascii_fold(c[0]) in seen:
                refuse("body.schema: duplicate column name")
            seen.add(ascii_fold(c[0]))

    def on_run_failed(self, k, b):
        spec = {"computation": ("str", NAME_MAX), "error": ("str", ERROR_MAX),
                "run": ("str", 32)}
        logs = (k == self.daemon and self.script_comp(b) is not None and
                ("logs_blob" in b or "logs_sha256" in b))
        if logs:
            spec.update({"logs_blob": ("str", BLOB_MAX), "logs_sha256": ("bin32", 0)})
        r = self.daemon_run(k, b, spec)
        if logs and not b["logs_blob"]:
            refuse("body.logs_blob: empty blob id")
        if b["error"] not in ERROR_CLASSES:
            refuse("run.failed: the error is not one of the data-free error classes")
        r["state"] = "failed"

    def on_result_retrieved(self, k, b):
        self.participant(k)
        self.body(b, {"run": ("str", 32)})
        self.published()
        r = self.runs.get(b["run"])
        if r is None:
            refuse("no run %s" % b["run"])
        if r.get("preview") is not None:
            if k != r["preview"]:
                refuse("a preview is read only by the owner who asked for it")
        else:
            self.role(k, "analyst_of", r["computation"])
        if r["state"] != "done":
            refuse("run has not completed")

    # ---- development runs (rules.md "Development runs")

    def dev_input(self, k, name):
        ds = next((x for x in self.d["datasets"] if x["name"] == name), None)
        if ds is not None:
            self.role(k, "owner_of", name)
            if ds["budget"]:
                refuse("dataset %s has an epsilon_budget: a development run may not read it"
                       % name)
            if name not in self.prov:
                refuse("dataset %s is not provisioned" % name)
            return self.prov[name]
        if any(c["name"] == name for c in self.d["computations"]):
            self.role(k, "analyst_of", name)
            done = [r for r in self.runs.values()
                    if r["computation"] == name and r["state"] == "done"]
            if not done:
                refuse("computation %s has no completed run to read" % name)
            return done[-1]["result_sha256"]  # runs keep request order
        refuse("no dataset or computation named %r" % name)

    def on_dev_requested(self, k, b):
        self.participant(k)
        self.body(b, {"inputs": ("array", 0), "language": ("str", 16), "run": ("str", 32),
                      "script": ("str", SCRIPT_MAX)})
        if not self.d["development"]:
            refuse("development runs are off in this room")
        self.published()
        if b["language"] not in ("sql", "python", "r"):
            refuse("body.language: not sql, python or r")
        if not b["script"]:
            refuse("body.script: empty")
        r = b["run"]
        if len(r) != 32 or any(c not in "0123456789abcdef" for c in r):
            refuse("body.run: not a run id (32 lowercase hex characters)")
        if r in self.runs or r in self.devs:
            refuse("run already exists")
        if len(self.devs) >= DEVS_MAX:
            refuse("too many development runs")
        ins = b["inputs"]
        if len(ins) > DEV_INPUTS_MAX:
            refuse("body.inputs: too many inputs")
        rec = {}
        for i, name in enumerate(ins):
            if not isinstance(name, str) or not 1 <= ubytes(name) <= NAME_MAX or "\0" in name:
                refuse("body.inputs[%d]: expected a name" % i)
            if i and ubytes_key(ins[i - 1]) >= ubytes_key(name):
                refuse("body.inputs[%d]: names are sorted bytewise, each once" % i)
            rec[name] = self.dev_input(k, name)
        self.devs[r] = {"by": k, "state": "queued", "inputs": rec}

    def daemon_dev(self, k, b, spec):
        if k != self.daemon:
            refuse("actor is not the daemon")
        if self.status not in ("published", "stopped"):
            refuse("runs are reported only while published or stopped")
        self.body(b, spec)
        r = self.devs.get(b["run"])
        if r is None:
            refuse("no development run %s" % b["run"])
        if r["state"] != "queued":
            refuse("development run has already finished")
        if not b["logs_blob"] and b["logs_sha256"] != EMPTY_SHA256:
            refuse("body.logs_sha256: must be the SHA-256 of no bytes when logs_blob is empty")
        return r

    def on_dev_completed(self, k, b):
        r = self.daemon_dev(k, b, {
            "duration_ms": ("uint", 0), "inputs": ("map", 0), "logs_blob": ("str", BLOB_MAX),
            "logs_sha256": ("bin32", 0), "result_blob": ("str", BLOB_MAX),
            "result_bytes": ("uint", 0), "result_sha256": ("bin32", 0), "run": ("str", 32)})
        ins = b["inputs"]
        if sorted(ins) != sorted(r["inputs"]):
            refuse("body.inputs: not exactly the inputs of the development run")
        for x, want in r["inputs"].items():
            if not isinstance(ins[x], bytes) or ins[x] != want:
                refuse("body.inputs.%s: not the sha256 recorded when requested" % x)
        if not b["result_blob"]:
            refuse("body.result_blob: empty blob id")
        r["state"] = "done"

    def on_dev_failed(self, k, b):
        spec = {"error": ("str", ERROR_MAX), "logs_blob": ("str", BLOB_MAX),
                "logs_sha256": ("bin32", 0), "run": ("str", 32)}
        if k == self.daemon and self.status in ("published", "stopped"):
            self.body(b, spec)
            if b["error"] not in ERROR_CLASSES:
                refuse("dev.failed: the error is not one of the data-free error classes")
        r = self.daemon_dev(k, b, spec)
        r["state"] = "failed"


    # requests (rules.md "Requests")

    def on_request_submitted(self, k, b):
        self.participant(k)
        self.body(b, {"request": ("str", 32), "text": ("str", DEF_BYTES_MAX)})
        self.published()
        if not self.d["interactive"]:
            refuse("the room is not interactive")
        r = b["request"]
        if len(r) != 32 or any(c not in "0123456789abcdef" for c in r):
            refuse("body.request: not a request id (32 lowercase hex characters)")
        if r in self.requests:
            refuse("request already exists")
        if len(self.requests) >= REQUESTS_MAX:
            refuse("too many requests")
        title, names, _, merged = request_merge(self.obj, b["text"])
        owners = affected_owners(merged, names)
        if not owners:
            refuse("request: its computations read no dataset")
        self.requests[r] = {"by": k, "text": b["text"], "state": "open",
                            "sha": hashlib.sha256(b["text"].encode("utf-8")).digest(),
                            "owners": owners, "votes": {}}

    def open_request(self, b):
        q = self.requests.get(b["request"])
        if q is None:
            refuse("no request %s" % b["request"])
        if q["state"] != "open":
            refuse("request is %s" % q["state"])
        return q

    def on_request_withdrawn(self, k, b):
        self.participant(k)
        self.body(b, {"request": ("str", 32)})
        self.published()
        q = self.open_request(b)
        if q["by"] != k:
            refuse("actor is not the author of the request")
        q["state"] = "withdrawn"

    def vote(self, k, b, approve, policy=None):
        self.participant(k)
        if policy is None:
            self.body(b, {"reason": ("str", REASON_MAX), "request": ("str", 32),
                          "request_sha256": ("bin32", 0)})
        self.published()
        q = self.open_request(b)
        if k not in q["owners"]:
            refuse("actor is not an affected owner of the request")
        if k in q["votes"]:
            refuse("actor has already voted")
        if b["request_sha256"] != q["sha"]:
            refuse("request_sha256 is not the SHA-256 of the request")
        if policy is not None:
            policy(q)
        q["votes"][k] = approve
        if not approve:
            q["state"] = "rejected"
        elif len(q["votes"]) == len(q["owners"]):
            try:
                _, _, obj, d = request_merge(self.obj, q["text"])
            except Refused:
                q["state"] = "failed"
                return
            self.obj, self.d = obj, d
            self.version += 1
            self.vsha = hashlib.sha256(self.vsha + q["sha"]).digest()
            q["state"] = "merged"

    def check_policy(self, q, owner):
        """rules.md "Auto-approval": every dataset owner owns that a new
        computation reads has a policy the computation satisfies."""
        try:
            _, names, _, d = request_merge(self.obj, q["text"])
        except Refused:
            refuse("the request no longer merges")
        p = next(p for p in d["participants"] if p["key"] == owner)
        for c in (c for c in d["computations"] if c["name"] in names):
            reads = datasets_read(d, c)
            for ds in d["datasets"]:
                if ds["name"] not in reads or ds["name"] not in p["owner_of"]:
                    continue
                pol = ds["policy"]
                if pol is None:
                    refuse("dataset %s has no auto_approve policy" % ds["name"])
                if c["kind"] not in pol["kinds"]:
                    refuse("kind not allowed by the policy")
                if pol["min_rows"] and c["k"] < pol["min_rows"]:
                    refuse("min_rows_aggregated below the policy's")
                if pol["analysts"] is not None:
                    for a in d["participants"]:
                        if c["name"] in a["analyst_of"] and a["email"] not in pol["analysts"]:
                            refuse("analyst not allowed by the policy")

    def on_request_auto_approved(self, k, b):
        if k != self.daemon:
            refuse("actor is not the daemon")
        self.body(b, {"owner": ("bin32", 0), "request": ("str", 32),
                      "request_sha256": ("bin32", 0)})
        self.vote(b["owner"], b, True, lambda q: self.check_policy(q, b["owner"]))

    def on_request_preview_requested(self, k, b):
        """rules.md "Previews"."""
        self.participant(k)
        self.body(b, {"computation": ("str", NAME_MAX), "request": ("str", 32),
                      "run": ("str", 32)})
        self.published()
        q = self.open_request(b)
        if len(q["owners"]) != 1:
            refuse("a preview needs a sole affected owner")
        if q["owners"][0] != k:
            refuse("actor is not the affected owner of the request")
        try:
            _, names, _, d = request_merge(self.obj, q["text"])
        except Refused:
            refuse("the request no longer merges")
        if b["computation"] not in names:
            refuse("not a computation of the request")
        comp = next(c for c in d["computations"] if c["name"] == b["computation"])
        if comp["epsilon"]:
            refuse("a differentially private computation is not previewed")
        reads = datasets_read(d, comp)
        if d["require_provisioned"]:
            req = {x["name"] for x in d["datasets"] if x["required"]}
            if any(x in req and x not in self.prov for x in reads):
                refuse("computation needs datasets not provisioned")
        r = b["run"]
        if len(r) != 32 or any(c not in "0123456789abcdef" for c in r):
            refuse("body.run: not a run id (32 lowercase hex characters)")
        if r in self.runs:
            refuse("run already exists")
        if len(self.runs) >= RUNS_MAX:
            refuse("too many runs")
        self.runs[r] = {"computation": comp["name"], "state": "queued", "preview": k,
                        "comp": comp, "inputs": {x: self.prov.get(x) for x in reads}}

    def on_request_approved(self, k, b):
        self.vote(k, b, True)

    def on_request_rejected(self, k, b):
        self.vote(k, b, False)


def ubytes_key(s):
    return s.encode("utf-8")


TYPES = ["room.created", "room.draft_saved", "room.published", "room.stopped",
         "dataset.provisioned", "dataset.deprovisioned", "run.requested", "run.completed",
         "run.failed", "result.retrieved", "dev.requested", "dev.completed", "dev.failed",
         "request.submitted", "request.withdrawn", "request.approved", "request.rejected",
         "request.auto_approved", "request.preview_requested"]

# ---- the export (event-format.md §8.1 + the rules) -------------------------------------


def verify_export(b, out=None):
    x = ai.dec_all(b)
    keys = ["checkpoint", "daemon_key", "entries", "format", "participants", "room"]
    if not isinstance(x, dict) or sorted(x) != keys:
        raise Bad("export fields")
    if x["format"] != "dcr.audit-export/1" or not ai.is_room(x["room"]):
        raise Bad("export format or room")
    if not x["entries"]:
        raise Bad("export has no events")
    room = Room(x["daemon_key"])
    for i, entry in enumerate(x["entries"]):
        e = ai.check_entry(entry, x["room"], i)
        try:
            room.apply(e)
        except Refused as r:
            raise Bad("seq %d (%s): %s" % (i, e["type"], r))
    want = [{"email": p["email"], "key": p["key"]} for p in room.d["participants"]]
    if x["participants"] != want:
        raise Bad("participants do not match the replayed definition")
    cp = ai.check_checkpoint(x["checkpoint"])
    if cp["key"] != x["daemon_key"]:
        raise Bad("checkpoint not signed by the daemon key")
    if cp["room"] != x["room"] or cp["size"] != len(x["entries"]):
        raise Bad("checkpoint room or size")
    root = ai.mth([ai.leaf(e) for e in x["entries"]])
    if root != cp["root"]:
        raise Bad("root mismatch")
    if out is not None:
        out["room"] = room
    return "ok %s %d %s" % (x["room"], len(x["entries"]), root.hex())


def ledger_lines(room):
    """The epsilon ledger after the replay, as `dcr audit verify` words it."""
    parts = []
    for ds in room.d["datasets"]:
        if ds["budget"]:
            sp = room.spent.get(ds["name"], 0)
            parts.append("%s: %s of %s spent, %s left" % (
                ds["name"], epsilon_text(sp), epsilon_text(ds["budget"]),
                epsilon_text(ds["budget"] - sp)))
    return "; ".join(parts)


def main(argv):
    if len(argv) != 3 or argv[1] not in ("export", "ledger"):
        sys.stderr.write(__doc__)
        return 2
    b = open(argv[2], "rb").read()
    try:
        out = {}
        verdict = verify_export(b, out)
        # "ledger": the epsilon budgets replayed (rules.md, "The epsilon ledger")
        print(ledger_lines(out["room"]) if argv[1] == "ledger" else verdict)
        return 0
    except (Bad, KeyError, TypeError, ValueError, IndexError, AttributeError) as x:
        print("bad: %s" % x)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
