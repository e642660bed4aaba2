#!/usr/bin/env python3
"""make_seeds.py: writes the hand-made seed inputs of the fuzz corpora
(tests/fuzz/corpus/<target>/seed-*). Inputs the fuzzer found are stored
beside them (named by libFuzzer, or crash-* for reproducers) and are not
touched here. Run from anywhere: python3 tests/fuzz/make_seeds.py

The msgpack encoder below writes the canonical form of base/base.h
(shortest integers, unsigned when non-negative, float64 only, map keys
sorted bytewise); its keys and values follow docs/event-format.md and
docs/protocol.md. Keys are RFC 8032's test-vector public keys, as in
fuzz_room_fixture.h."""
import base64
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

ANNA = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
IAN = bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
DAEMON = bytes.fromhex("fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025")
ROOM = "00112233445566778899aabbccddeeff"
TS0 = 1764072000000
RUN1 = "0123456789abcdef0123456789abcdef"
RUN2 = "fedcba9876543210fedcba9876543210"


def mp(v):
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if v >= 0:
            if v < 128:
                return bytes([v])
            for tag, fmt, lim in ((0xCC, ">B", 1 << 8), (0xCD, ">H", 1 << 16),
                                  (0xCE, ">I", 1 << 32), (0xCF, ">Q", 1 << 64)):
                if v < lim:
                    return bytes([tag]) + struct.pack(fmt, v)
        if v >= -32:
            return struct.pack(">b", v)
        for tag, fmt, lim in ((0xD0, ">b", 1 << 7), (0xD1, ">h", 1 << 15),
                              (0xD2, ">i", 1 << 31), (0xD3, ">q", 1 << 63)):
            if v >= -lim:
                return bytes([tag]) + struct.pack(fmt, v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        n = len(b)
        if n < 32:
            return bytes([0xA0 | n]) + b
        if n < 256:
            return b"\xd9" + bytes([n]) + b
        if n < 65536:
            return b"\xda" + struct.pack(">H", n) + b
        return b"\xdb" + struct.pack(">I", n) + b
    if isinstance(v, (bytes, bytearray)):
        n = len(v)
        if n < 256:
            return b"\xc4" + bytes([n]) + bytes(v)
        if n < 65536:
            return b"\xc5" + struct.pack(">H", n) + bytes(v)
        return b"\xc6" + struct.pack(">I", n) + bytes(v)
    if isinstance(v, list):
        n = len(v)
        h = bytes([0x90 | n]) if n < 16 else (b"\xdc" + struct.pack(">H", n))
        return h + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        n = len(v)
        h = bytes([0x80 | n]) if n < 16 else (b"\xde" + struct.pack(">H", n))
        items = sorted(v.items(), key=lambda kv: kv[0].encode())
        return h + b"".join(mp(k) + mp(x) for k, x in items)
    raise TypeError(v)


def envelope(actor, seq, typ, body, room=ROOM, ts=None, v=1):
    env = {"actor": actor, "body": body, "room": room, "seq": seq,
           "ts": TS0 + seq * 1000 if ts is None else ts, "type": typ, "v": v}
    return mp(env) + bytes(64)


def pubs(k):
    return "ed25519:" + base64.b64encode(k).decode()


DEF = """{
  "format": "dcr.room/1",
  "name": "fuzz-room",
  "description": "fixture of the fuzz targets",
  "settings": {"interactive": true, "development": true, "require_provisioned": true},
  "participants": [
    {"email": "anna@bank.example", "key": "%s",
     "owner_of": ["bank", "docs"], "analyst_of": ["raw"]},
    {"email": "ian@insurer.example", "key": "%s",
     "owner_of": ["ins"], "analyst_of": ["overlap", "py", "syn"]}
  ],
  "datasets": [
    {"name": "bank", "columns": [
      {"name": "email", "type": "string", "format": "email", "nullable": false},
      {"name": "city", "type": "string"},
      {"name": "age", "type": "integer"}]},
    {"name": "ins", "share_statistics": true, "columns": [
      {"name": "email", "type": "string"},
      {"name": "risk", "type": "float"}]},
    {"name": "docs", "kind": "file", "required": false}
  ],
  "computations": [
    {"name": "raw", "kind": "sql", "query": "SELECT city, age FROM bank"},
    {"name": "overlap", "kind": "sql", "privacy": {"min_rows_aggregated": 5},
     "query": "SELECT b.city, COUNT(*) AS n FROM bank b JOIN ins i USING (email) GROUP BY b.city"},
    {"name": "py", "kind": "python", "inputs": ["overlap", "docs"], "script": "print(1)\\n"},
    {"name": "syn", "kind": "synthetic", "input": "bank", "mask": ["email"], "epsilon": 1.0}
  ]
}
""" % (pubs(ANNA), pubs(IAN))

MINIMAL_DEF = """{"format": "dcr.room/1", "name": "r", "participants": [
 {"email": "a@b.example", "key": "%s"}]}""" % pubs(ANNA)


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def csv_seeds():
    h = "id,name,score,email,day,digest,qty,ratio"
    dg = "0123456789abcdef" * 4
    rows = {
        "valid": h + "\r\n1,alice,0.5,a@b.example,2024-02-29,%s,3,1.0\r\n2,,,,,,,2\r\n" % dg,
        "valid_lf_bom": "\ufeff" + h + "\n1,\"bob, jr\",-1e3,x@y.example,1999-12-31,%s,-7,0\n" % dg.upper(),
        "quoted_newline": h + '\n3,"two\nlines ""q""",1,,,,,1.5\n4,"",,"",,,"",2\n',
        "reordered_header": "ratio,qty,digest,day,email,score,name,id\n1,,,,,,,5\n",
        "utf8": h + "\n5,caf\u00e9 \u65e5\u672c \U0001f600,2.5,\u00fc@b.example,2020-01-01,,1,3\n",
        "bad_utf8": (h + "\n6,\xff\xfe,1,,,,,1\n").encode("latin-1"),
        "split_utf8": (h + "\n7,\xe6\x97\xa5,\xe6\x97,,,,,1\n").encode("latin-1"),
        "missing_col": "id,name,score,email,day,digest,qty\n1,a,1,,,,1\n",
        "dup_col": h + ",id\n",
        "unknown_col": h + ",extra\n1,a,1,,,,1,1,x\n",
        "too_few_fields": h + "\n1,a\n",
        "too_many_fields": h + "\n1,a,1,,,,1,1,1\n",
        "int_overflow": h + "\n9223372036854775808,a,1,,,,1,1\n",
        "int_min": h + "\n-9223372036854775808,a,1,,,,+1,1\n",
        "float_edge": h + "\n1,a,1e999,,,,1,nan\n2,a,0x10,,,,1,.5\n3,a,1.,,,,1,-0\n",
        "bad_date": h + "\n1,a,1,,2023-02-29,,1,1\n2,a,1,,2024-13-01,,1,1\n",
        "bad_email": h + "\n1,a,1,not-an-email,,,1,1\n",
        "bad_sha": h + "\n1,a,1,,,%s,1,1\n" % ("g" * 64),
        "null_not_nullable": h + "\n,a,1,,,,1,1\n",
        "quoted_null_int": h + '\n"",a,1,,,,1,1\n',
        "unterminated_quote": h + '\n1,"abc,1,,,,1,1\n',
        "quote_in_field": h + '\n1,a"b,1,,,,1,1\n',
        "after_quote": h + '\n1,"a"b,1,,,,1,1\n',
        "blank_lines": h + "\n\n1,a,1,,,,1,1\n\n",
        "cr_only": h + "\r1,a,1,,,,1,1\r",
        "empty": "",
        "header_only": h,
        "nul_byte": (h + "\n1,a\x00b,1,,,,1,1\n").encode(),
        "spaces": h + "\n 1 ,a, 1.5 ,,,,1,1\n",
        "many_rows": h + "\n" + "".join("%d,n%d,%d.5,u%d@x.example,2021-03-%02d,,%d,%d\n"
                                         % (i, i % 7, i, i, 1 + i % 28, i % 5, i) for i in range(200)),
    }
    for k, v in rows.items():
        write("csv", k, v)


def envelope_seeds():
    provisioned = {"blob": "blob-ins-1", "bytes": 10, "dataset": "ins", "file": "ins.csv",
                   "rows": 2, "sha256": b"\x11" * 32, "stats_sha256": b"\x22" * 32}
    # run.completed of the fixture's queued run: inputs as recorded when it
    # was requested (bank provisioned with sha256 ab..ab), schema in msgpack
    completed = {"computation": "raw", "duration_ms": 5,
                 "inputs": {"bank": b"\xab" * 32}, "result_blob": "blob-r2",
                 "result_bytes": 10, "result_sha256": b"\x33" * 32, "rows": 1,
                 "run": RUN2, "schema": [["city", "string"], ["age", "integer"]],
                 "suppressed": 0}
    ev = {
        "created": envelope(ANNA, 0, "room.created", {"definition": DEF}),
        "created_minimal": envelope(IAN, 0, "room.created", {"definition": MINIMAL_DEF}),
        "retrieved": envelope(ANNA, 6, "result.retrieved", {"run": RUN1}),
        "retrieved_not_analyst": envelope(IAN, 6, "result.retrieved", {"run": RUN1}),
        "completed": envelope(DAEMON, 6, "run.completed", completed),
        "completed_not_daemon": envelope(ANNA, 6, "run.completed", completed),
        "completed_wrong_input": envelope(DAEMON, 6, "run.completed",
                                          dict(completed, inputs={"bank": b"\x00" * 32})),
        "completed_no_inputs": envelope(DAEMON, 6, "run.completed", dict(completed, inputs={})),
        "completed_dup_column": envelope(DAEMON, 6, "run.completed",
                                         dict(completed, schema=[["a", "string"],
                                                                 ["A", "integer"]])),
        "completed_json_schema": envelope(DAEMON, 6, "run.completed",
                                          dict(completed, schema='[["city","string"]]')),
        "failed": envelope(DAEMON, 6, "run.failed",
                           {"computation": "raw", "error": "time limit", "run": RUN2}),
        "deprovisioned": envelope(ANNA, 6, "dataset.deprovisioned", {"dataset": "bank"}),
        "provisioned": envelope(IAN, 6, "dataset.provisioned", provisioned),
        "provisioned_wrong_owner": envelope(ANNA, 6, "dataset.provisioned", provisioned),
        "stopped": envelope(ANNA, 6, "room.stopped", {"reason": "done"}),
        "requested": envelope(ANNA, 6, "run.requested", {"computation": "raw", "run": "a" * 32}),
        "requested_blocked": envelope(IAN, 6, "run.requested",
                                      {"computation": "overlap", "run": "b" * 32}),
        "requested_dup": envelope(ANNA, 6, "run.requested", {"computation": "raw", "run": RUN1}),
        "saved_published": envelope(ANNA, 6, "room.draft_saved", {"definition": MINIMAL_DEF}),
        "wrong_seq": envelope(ANNA, 9, "room.stopped", {"reason": "x"}),
        "wrong_room": envelope(ANNA, 6, "room.stopped", {"reason": "x"}, room="ff" * 16),
        "old_ts": envelope(ANNA, 6, "room.stopped", {"reason": "x"}, ts=1),
        "extra_body_key": envelope(ANNA, 6, "room.stopped", {"reason": "x", "z": 1}),
        "unknown_type": envelope(ANNA, 6, "room.renamed", {}),
        "bad_version": envelope(ANNA, 6, "room.stopped", {"reason": "x"}, v=2),
        "uppercase_room": envelope(ANNA, 6, "room.stopped", {"reason": "x"}, room=ROOM.upper()),
    }
    for k, v in ev.items():
        write("envelope", "event_" + k, v)
    good = envelope(ANNA, 6, "room.stopped", {"reason": "x"})
    write("envelope", "event_truncated", good[:-65])
    write("envelope", "event_trailing", good[:-64] + b"\xc0" + bytes(64))
    cp = {"key": DAEMON, "room": ROOM, "root": b"\x44" * 32, "sig": b"\x55" * 64,
          "size": 6, "ts": TS0}
    write("envelope", "checkpoint", mp(cp))
    write("envelope", "checkpoint_extra", mp(dict(cp, x=1)))
    write("envelope", "checkpoint_short_root", mp(dict(cp, root=b"\x44" * 31)))
    # generic msgpack, canonical and not
    values = {
        "mp_all_types": mp({"a": None, "b": True, "c": False, "d": 127, "e": 128, "f": 65536,
                            "g": 1 << 40, "h": -1, "i": -33, "j": -(1 << 40), "k": 1.5,
                            "l": "s" * 40, "m": b"\x00\x01", "n": [1, [2, [3]]],
                            "o": {"": 0, "x": {}}}),
        "mp_uint_max": mp([(1 << 64) - 1, -(1 << 63)]),
        "mp_deep": b"\x91" * 16 + b"\xc0",
        "mp_too_deep": b"\x91" * 17 + b"\xc0",
    }
    for k, v in values.items():
        write("envelope", k, v)
    raw = {
        "mp_noncanon_uint8": b"\xcc\x05",
        "mp_noncanon_int8_pos": b"\xd0\x05",
        "mp_float32": b"\xca\x3f\xc0\x00\x00",
        "mp_unsorted_keys": b"\x82\xa1b\x01\xa1a\x02",
        "mp_dup_keys": b"\x82\xa1a\x01\xa1a\x02",
        "mp_nonstr_key": b"\x81\x01\x02",
        "mp_ext": b"\xd4\x01\x00",
        "mp_str8_short": b"\xd9\x03abc",
        "mp_bad_utf8": b"\xa2\xc3\x28",
        "mp_huge_array_len": b"\xdd\xff\xff\xff\xff",
        "mp_huge_str_len": b"\xdb\xff\xff\xff\xff",
        "mp_trailing": b"\xc0\xc0",
        "mp_nan": b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x01",
        "mp_reserved_c1": b"\xc1",
    }
    for k, v in raw.items():
        write("envelope", k, v)


def frame_seeds():
    def frame(body):
        return struct.pack(">I", len(body)) + body
    req = mp({"args": {"room": ROOM}, "id": 1, "op": "size"})
    write("frame", "request", frame(req))
    write("frame", "request_noargs", frame(mp({"id": 7, "op": "rooms"})))
    write("frame", "response_ok", frame(mp({"id": 1, "ok": True, "size": 6})))
    write("frame", "response_err", frame(mp({"code": "ESIG", "error": "bad signature",
                                             "id": 2, "ok": False})))
    write("frame", "response_unknown_code", frame(mp({"code": "EWHAT", "error": "x", "id": 3,
                                                      "ok": False})))
    write("frame", "stream3", frame(req) + frame(mp({"id": 2, "op": "whoami"})) +
          frame(mp({"args": {"data": b"\x00" * 100, "upload": "u1"}, "id": 3,
                    "op": "upload.chunk"})))
    write("frame", "incomplete", frame(req)[:-3])
    write("frame", "not_a_map", frame(mp([1, 2, 3])))
    write("frame", "empty_body", frame(b""))
    write("frame", "huge_header", b"\xff\xff\xff\xff" + req)
    write("frame", "limit_header", struct.pack(">I", 4 * 1024 * 1024 + 64 * 1024 + 1))
    write("frame", "unsorted", frame(b"\x82\xa2op\xa4size\xa2id\x01"))
    write("frame", "body_only", req)
    # dcrd's pre-pass: at most 4096 values per request (DCR_FRAME_REQUEST_OBJECTS_MAX):
    # map, "args", map, "x", array, n integers, "id", 1: 7 + n
    write("frame", "values_at_limit", frame(mp({"args": {"x": [1] * 4089}, "id": 1})))
    write("frame", "values_over_limit", frame(mp({"args": {"x": [1] * 4090}, "id": 1})))
    # the memory attack in small: a map of arrays of small integers
    write("frame", "map_of_int_arrays",
          frame(mp({"k%02d" % i: [i % 128] * 1000 for i in range(16)})))
    write("frame", "submit", frame(mp({"args": {"entry": envelope(ANNA, 6, "room.stopped",
                                                                    {"reason": "x"}),
                                                "room": ROOM}, "id": 9, "op": "submit"})))


def room_json_seeds():
    write("room_json", "fixture", DEF)
    write("room_json", "minimal", MINIMAL_DEF)
    bad = {
        "dup_key": MINIMAL_DEF.replace('"name": "r"', '"name": "r", "name": "s"'),
        "unknown_field": MINIMAL_DEF.replace('"name": "r"', '"name": "r", "nmae": 1'),
        "x_field": MINIMAL_DEF.replace('"name": "r"', '"name": "r", "x-note": [1, {"a": 2}]'),
        "bad_format": MINIMAL_DEF.replace("dcr.room/1", "dcr.room/2"),
        "bad_key": MINIMAL_DEF.replace(pubs(ANNA), "ed25519:AAAA"),
        "weak_key": MINIMAL_DEF.replace(pubs(ANNA), pubs(bytes(32))),
        "not_a_point": MINIMAL_DEF.replace(pubs(ANNA), pubs(bytes([2]) + bytes(31))),
        "too_deep": MINIMAL_DEF.replace('"name": "r"', '"name": "r", "x-d": ' + "[" * 33 + "]" * 33),
        "min_rows_big": DEF.replace('"min_rows_aggregated": 5',
                                    '"min_rows_aggregated": 1000000001'),
        "reads_nothing": DEF.replace("FROM bank\"", "FROM (SELECT 1 AS city, 2 AS age) -- bank\""),
        "bad_email": MINIMAL_DEF.replace("a@b.example", "a b@c"),
        "syntax": MINIMAL_DEF[:-5],
        "not_object": "[1, 2, 3]",
        "nul": MINIMAL_DEF.replace('"r"', '"r\\u0000x"'),
        "cycle": DEF.replace('"query": "SELECT city, age FROM bank"',
                             '"query": "SELECT city, age FROM raw"'),
        "no_aggregate": DEF.replace("SELECT b.city, COUNT(*) AS n FROM bank b JOIN ins i "
                                    "USING (email) GROUP BY b.city", "SELECT email FROM bank"),
        "unknown_table": DEF.replace("FROM bank\"", "FROM nope\""),
        "no_owner": DEF.replace('"owner_of": ["ins"], ', ""),
        "dup_dataset": DEF.replace('{"name": "docs"', '{"name": "bank"'),
        "sqlite_name": DEF.replace('"name": "docs"', '"name": "sqlite_docs"'),
        "bad_type": DEF.replace('"type": "float"', '"type": "double"'),
        "epsilon_big": DEF.replace('"epsilon": 1.0', '"epsilon": 1e300'),
        "min_rows_neg": DEF.replace('"min_rows_aggregated": 5', '"min_rows_aggregated": -1'),
        "deep": "[" * 5000 + "]" * 5000,
        "utf16_escape": MINIMAL_DEF.replace('"r"', '"r"').replace(
            '"format"', '"description": "\\ud83d\\ude00 \\u00e9", "format"'),
        "lone_surrogate": MINIMAL_DEF.replace('"format"', '"description": "\\ud800", "format"'),
    }
    for k, v in bad.items():
        write("room_json", k, v)


def sql_seeds():
    qs = {
        "select_star": "SELECT * FROM t",
        "join": "SELECT t.name, COUNT(*) AS n FROM t JOIN u ON t.name = u.email GROUP BY t.name",
        "using": "SELECT COUNT(*) FROM t a JOIN t b USING (id)",
        "cte": "WITH x AS (SELECT id FROM t) SELECT COUNT(*) FROM x",
        "recursive": "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c WHERE n<100) "
                     "SELECT COUNT(*) FROM c",
        "union": "SELECT name FROM t UNION SELECT email FROM u",
        "quoted": 'SELECT "id", [name], `score` FROM "t"',
        "schema_prefix": "SELECT COUNT(*) FROM main.t",
        "comment": "SELECT /* FROM u */ COUNT(*) FROM t -- u\n",
        "string": "SELECT 'u' AS x, COUNT(*) FROM t",
        "subquery": "SELECT (SELECT COUNT(*) FROM u) AS n, COUNT(*) FROM t",
        "window": "SELECT id, SUM(score) OVER (ORDER BY id) FROM t",
        "json": "SELECT json_group_array(name) FROM t",
        "pragma": "PRAGMA table_info(t)",
        "attach": "ATTACH 'x.db' AS y",
        "two_statements": "SELECT 1; SELECT 2",
        "sqlite_master": "SELECT * FROM sqlite_master",
        "load_extension": "SELECT load_extension('x')",
        "insert": "INSERT INTO t VALUES (1, 'a', 1.0)",
        "values": "VALUES (1), (2)",
        "having": "SELECT name FROM t GROUP BY name HAVING COUNT(*) > 1",
        "distinct": "SELECT DISTINCT name FROM t",
        "case_upper": "select count(*) from T",
        "unterminated_comment": "SELECT 1 /* ",
        "unterminated_string": "SELECT 'abc",
        "variable": "SELECT ?1, :x, @y, $z FROM t",
        "blob_literal": "SELECT x'0102', COUNT(*) FROM t",
        "names": "SELECT overlap, by_city FROM t",
        "temp_table": "SELECT * FROM temp.t",
        "pragma_func": "SELECT * FROM pragma_table_info('t')",
        "randomblob": "SELECT length(randomblob(1000000000))",
        "nested_parens": "SELECT " + "(" * 200 + "1" + ")" * 200,
    }
    for k, v in qs.items():
        write("sql_refs", k, v)
    # Queries that once ran into the SQL time limit; with the deterministic
    # check budget they are fast and replayed with the corpus as slow-*
    # (docs/fuzzing.md).
    slow = {
        "huge_cte": "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c) "
                    "SELECT COUNT(*) FROM c",
        "printf": "SELECT printf('%.*c', 1000000000, 'x')",
    }
    d = os.path.join(HERE, "corpus", "sql_refs")
    for k, v in slow.items():
        with open(os.path.join(d, "slow-" + k), "w") as f:
            f.write(v)


if __name__ == "__main__":
    csv_seeds()
    envelope_seeds()
    frame_seeds()
    room_json_seeds()
    sql_seeds()
