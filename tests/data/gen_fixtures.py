#!/usr/bin/python3
"""Writes the golden fixtures of docs/protocol.md#fixtures (payload part).

For every case NAME this writes tests/data/fixtures/NAME.bin (one msgpack
payload, built with python3-msgpack or by hand for malformed bytes), the
expected NAME.ndjson, and NAME.opts when the case needs decoder options
(engine=sglang, max_tokens=N).  The expectation is computed HERE, in Python,
from the rules in docs/ndjson.md (with the peer's rendering in
tests/peer/layouts.py); it is
never produced by running kvtap's C code, so the golden test compares two
independent implementations.

Envelope of every line: pod "golden", no model, seq 7.

Not here: F18 (frame level) belongs to the zsock tests, F19 (replay
exchanges) to the replay tests, F20 (sequence bookkeeping) to seqtrack.

Run: /usr/bin/python3 tests/data/gen_fixtures.py
"""

import hashlib
import os
import struct
import sys

import msgpack

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "peer"))
from layouts import json_double, json_generic, json_str  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")

POD = "golden"
SEQ = 7
TS = 1700000000.0
U64 = (1 << 64) - 1
MAX_EVENTS = 65536
MAX_HASHES = 1048576
MAX_TOKENS = 16 * 1024 * 1024


def H(x):
    return hashlib.sha256(x).digest()


def L(x):
    return int.from_bytes(H(x), "big") & U64


FIELDS = [
    "block_hashes", "parent_block_hash", "token_ids", "block_size",
    "lora_id", "medium", "lora_name", "extra_keys", "group_idx",
    "kv_cache_spec_kind", "kv_cache_spec_sliding_window", "locality",
    "ownership", "cache_salt", "session_id",
]
REQUIRED = {
    "BlockStored": FIELDS[:6],
    "BlockRemoved": ["block_hashes", "medium"],
    "AllBlocksCleared": [],
}
MAP_KNOWN = {
    "BlockStored": set(FIELDS),
    "BlockRemoved": {"block_hashes", "medium", "group_idx",
                     "kv_cache_spec_kind", "kv_cache_spec_sliding_window",
                     "locality", "ownership"},
    "AllBlocksCleared": set(),
}
UNSIGNED = {"block_size", "group_idx", "kv_cache_spec_sliding_window"}
STRS = {"medium", "lora_name", "kv_cache_spec_kind", "locality",
        "ownership", "cache_salt", "session_id"}


# ---- JSON text: the same independent Python rendering the peer uses -----

def jnum(x):
    return json_double(x) if isinstance(x, float) else str(x)


# ---- structural check: what a bounds-checked reader must reject ----------

def structure_error(data):
    """None, or the batch error a streaming reader reports first."""
    pos, pending, n = 0, 1, len(data)
    while pending:
        if pos >= n:
            return "truncated msgpack"
        b = data[pos]
        pos += 1
        pending -= 1
        count = None
        body = 0
        if b <= 0x7f or b >= 0xe0 or b in (0xc0, 0xc2, 0xc3):
            pass
        elif 0x80 <= b <= 0x8f:
            count = ("map", b & 15)
        elif 0x90 <= b <= 0x9f:
            count = ("array", b & 15)
        elif 0xa0 <= b <= 0xbf:
            body = b & 31
        elif b == 0xc1:
            return "invalid msgpack byte"
        elif b in (0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2,
                   0xd3):
            body = {0xca: 4, 0xcb: 8, 0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8,
                    0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8}[b]
        elif b in (0xc4, 0xc5, 0xc6, 0xd9, 0xda, 0xdb):
            w = {0xc4: 1, 0xd9: 1, 0xc5: 2, 0xda: 2, 0xc6: 4, 0xdb: 4}[b]
            if n - pos < w:
                return "truncated msgpack"
            body = int.from_bytes(data[pos:pos + w], "big")
            pos += w
        elif b in (0xdc, 0xdd, 0xde, 0xdf):
            w = 2 if b in (0xdc, 0xde) else 4
            if n - pos < w:
                return "truncated msgpack"
            c = int.from_bytes(data[pos:pos + w], "big")
            pos += w
            count = ("array" if b in (0xdc, 0xdd) else "map", c)
        elif 0xd4 <= b <= 0xd8:
            body = 1 + (1 << (b - 0xd4))
        elif b in (0xc7, 0xc8, 0xc9):
            w = {0xc7: 1, 0xc8: 2, 0xc9: 4}[b]
            if n - pos < w:
                return "truncated msgpack"
            body = int.from_bytes(data[pos:pos + w], "big") + 1
            pos += w
        if count is not None:
            kind, c = count
            need = 2 * c if kind == "map" else c
            if need > n - pos:
                return "declared size exceeds payload"
            pending += need
        if body:
            if n - pos < body:
                return "truncated msgpack"
            pos += body
    if pos != n:
        return "trailing bytes after batch"
    return None


# ---- the decoding rules ---------------------------------------------------

class EventError(Exception):
    pass


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def hash_of(v, name):
    """(canonical u64, digest bytes or None)."""
    if is_int(v):
        return v & U64, None
    if isinstance(v, bytes):
        if len(v) < 8:
            raise EventError(name + ": digest shorter than 8 bytes")
        return int.from_bytes(v[-8:], "big"), v
    raise EventError(name + ": wrong type")


def check_field(name, v, opts):
    """The field's JSON text; EventError when v has the wrong type."""
    wrong = EventError(name + ": wrong type")
    if v is None:
        if name in ("block_hashes", "token_ids", "block_size"):
            raise wrong
        return "null", None
    if name == "block_hashes":
        if not isinstance(v, list):
            raise wrong
        if len(v) > MAX_HASHES:
            raise EventError("block_hashes: too many hashes")
        hs = [hash_of(x, name) for x in v]
        text = "[" + ",".join('"%d"' % h for h, _ in hs) + "]"
        digests = None
        if any(d is not None for _, d in hs):
            digests = "[" + ",".join(
                json_str(d.hex()) if d is not None else "null"
                for _, d in hs) + "]"
        return text, digests
    if name == "parent_block_hash":
        h, d = hash_of(v, name)
        return '"%d"' % h, (json_str(d.hex()) if d is not None else None)
    if name == "token_ids":
        if not isinstance(v, list):
            raise wrong
        if len(v) > opts.get("max_tokens", MAX_TOKENS):
            raise EventError("token_ids: too many tokens")

        def tok(t):
            if not is_int(t):
                raise wrong
            if t < 0 or t > 0xFFFFFFFF:
                raise EventError("token_ids: token out of range")
            return str(t)
        if v and isinstance(v[0], list):
            parts = []
            for p in v:
                if not isinstance(p, list) or len(p) != 2:
                    raise EventError("token_ids: malformed pair")
                parts.append("[" + tok(p[0]) + "," + tok(p[1]) + "]")
            return "[" + ",".join(parts) + "]", None
        return "[" + ",".join(tok(t) for t in v) + "]", None
    if name in UNSIGNED:
        if not is_int(v) or v < 0 or v > (1 << 63) - 1:
            raise wrong
        return str(v), None
    if name == "lora_id":
        if not is_int(v) or v > (1 << 63) - 1:
            raise wrong
        return str(v), None
    if name in STRS:
        if not isinstance(v, str):
            raise wrong
        return json_str(v), None
    if name == "extra_keys":
        if not isinstance(v, list):
            raise wrong
        return json_generic(v), None
    raise AssertionError(name)


def slot_field(typ, engine, i):
    if typ == "BlockStored":
        if 1 <= i <= 6:
            return FIELDS[i - 1]
        if engine == "sglang":
            return {7: "cache_salt", 8: "session_id"}.get(i)
        return FIELDS[i - 1] if i <= 11 else None
    if typ == "BlockRemoved":
        if i == 1:
            return "block_hashes"
        if i == 2:
            return "medium"
        if i == 3 and engine == "vllm":
            return "group_idx"
    return None


def event_body(typ, fields, digests, parent_digest, unknown):
    """The text after "type":"...", from what was decoded."""
    out = []
    for f in FIELDS:
        if f in fields:
            out.append(json_str(f) + ":" + fields[f])
        elif f in REQUIRED[typ]:
            out.append(json_str(f) + ":null")
    if digests is not None:
        out.append('"block_digests":' + digests)
    if parent_digest is not None:
        out.append('"parent_block_digest":' + parent_digest)
    for k, v in unknown:
        out.append(json_str(k) + ":" + json_generic(v))
    return "".join("," + x for x in out)


def decode_event(ev, opts):
    """("event", type, body) / ("skip", tag) ; raises EventError."""
    engine = opts.get("engine", "vllm")
    fields, unknown = {}, []
    digests = parent_digest = None
    if isinstance(ev, list):
        if not ev:
            raise EventError("empty array")
        if not isinstance(ev[0], str):
            raise EventError("tag is not a string")
        typ = ev[0]
        if typ not in REQUIRED:
            return ("skip", typ)
        if typ == "BlockStored" and len(ev) < 6:
            raise EventError("BlockStored array has fewer than 6 elements")
        if typ == "BlockRemoved" and len(ev) < 2:
            raise EventError("BlockRemoved array has fewer than 2 elements")
        mandatory = {"BlockStored": 4, "BlockRemoved": 1}.get(typ, 0)
        for i in range(1, len(ev)):
            f = slot_field(typ, engine, i)
            v = ev[i]
            if f is not None:
                try:
                    if f == "cache_salt" and isinstance(v, dict):
                        salt = v.get("cache_salt")
                        if not isinstance(salt, str):
                            raise EventError("cache_salt: wrong type")
                        v = salt
                    text, dg = check_field(f, v, opts)
                    fields[f] = text
                    if f == "block_hashes":
                        digests = dg
                    elif f == "parent_block_hash":
                        parent_digest = dg
                    continue
                except EventError:
                    if i <= mandatory:
                        raise
            unknown.append(("@%d" % i, v))
        return ("event", typ, event_body(typ, fields, digests,
                                         parent_digest, unknown))
    if isinstance(ev, dict):
        typ = ev.get("type")
        if not isinstance(typ, str):
            raise EventError("no string type key")
        if typ not in REQUIRED:
            return ("skip", typ)
        for k, v in ev.items():
            if not isinstance(k, str):
                raise EventError("map key is not a string")
            if k == "type":
                continue
            if k in MAP_KNOWN[typ]:
                text, dg = check_field(k, v, opts)
                fields[k] = text
                if k == "block_hashes":
                    digests = dg
                elif k == "parent_block_hash":
                    parent_digest = dg
            else:
                unknown.append((k, v))
        return ("event", typ, event_body(typ, fields, digests,
                                         parent_digest, unknown))
    raise EventError("not an array or map")


def envelope(rank, ts):
    s = '{"pod":%s,"dp_rank":%s,"seq":%d' % (
        json_str(POD), "null" if rank is None else str(rank), SEQ)
    return s, ("" if ts is None else ',"ts":' + jnum(float(ts)))


def batch_error(msg, nbytes):
    env, _ = envelope(None, None)
    return env + ',"type":"decode_error","error":%s,"bytes":%d}\n' % (
        json_str(msg), nbytes)


def expect(payload, opts, error=None):
    """The NDJSON text kvsub must print for this payload."""
    n = len(payload)
    err = error or structure_error(payload)
    if err:
        return batch_error(err, n)
    b = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    rank = None
    if isinstance(b, list):
        if len(b) < 2:
            return batch_error("batch array has fewer than 2 elements", n)
        ts, events = b[0], b[1]
        if not (is_int(ts) or isinstance(ts, float)):
            return batch_error("ts is not a number", n)
        if not isinstance(events, list):
            return batch_error("events is not an array", n)
        if len(events) > opts.get("max_events", MAX_EVENTS):
            return batch_error("too many events (%d)" % len(events), n)
        if len(b) >= 3:
            rank = b[2]
            if not (rank is None or is_int(rank)):
                return batch_error("dp rank is not an integer or nil", n)
    elif isinstance(b, dict):
        ts = events = None
        for k, v in b.items():
            if k == "ts":
                if not (is_int(v) or isinstance(v, float)):
                    return batch_error("ts is not a number", n)
                ts = v
            elif k == "events":
                if not isinstance(v, list):
                    return batch_error("events is not an array", n)
                events = v
            elif k in ("data_parallel_rank", "attn_dp_rank"):
                if not (v is None or is_int(v)):
                    return batch_error("dp rank is not an integer or nil", n)
                rank = v
        if ts is None:
            return batch_error("ts missing", n)
        if events is None:
            return batch_error("events missing", n)
    else:
        return batch_error("batch is not an array or map", n)

    env, tstext = envelope(rank, ts)
    lines, skipped = [], {}
    for i, ev in enumerate(events):
        try:
            r = decode_event(ev, opts)
        except EventError as e:
            lines.append(env + tstext + ',"type":"decode_error","error":%s,'
                         '"bytes":%d}\n' % (json_str("event %d: %s" % (i, e)), n))
            continue
        if r[0] == "skip":
            skipped[r[1]] = skipped.get(r[1], 0) + 1
            continue
        lines.append(env + ',"i":%d' % i + tstext + ',"type":%s' % json_str(r[1])
                     + r[2] + "}\n")
    for tag, count in skipped.items():
        lines.append(env + tstext + ',"type":"skipped","tag":%s,"count":%d}\n'
                     % (json_str(tag), count))
    return "".join(lines)


# ---- the cases ------------------------------------------------------------

def pk(obj):
    return msgpack.packb(obj)


T16 = list(range(1, 17))
CASES = []


def case(name, payload, opts=None, error=None):
    CASES.append((name, payload, opts or {}, error))


def f04_event():
    return {"type": "BlockStored", "block_hashes": [15760518052499183552],
            "parent_block_hash": None, "token_ids": T16, "block_size": 16,
            "lora_id": None, "medium": "GPU", "lora_name": None,
            "extra_keys": [None], "group_idx": 0,
            "kv_cache_spec_kind": "full_attention"}


def build():
    case("F01", pk([TS, [["BlockStored", [1, 2], None, list(range(1, 9)), 4,
                          None], ["BlockRemoved", [1]],
                         ["AllBlocksCleared"]]]))
    case("F02", pk([TS, [["BlockStored", [L(b"b1")], None, [10, 11, 12, 13],
                          4, None, "GPU"],
                         ["BlockRemoved", [L(b"b1")], "GPU"]], 1]))
    case("F03", pk([TS, [["BlockStored", [L(b"b2")], None, list(range(16)),
                          16, None, "GPU", None, [None], 0, "full_attention",
                          None],
                         ["BlockRemoved", [L(b"b2")], "GPU", 0]], 0]))
    case("F04", pk([TS, [f04_event()], 0]))
    case("F05", pk({"ts": TS, "events": [
        {"type": "BlockRemoved", "block_hashes": [(1 << 63) + 1],
         "medium": "GPU", "group_idx": 0}], "data_parallel_rank": 0}))
    case("F05b", pk({"ts": TS, "events": [
        {"type": "BlockRemoved", "block_hashes": [(1 << 63) + 1],
         "medium": "GPU", "group_idx": 0}]}))
    case("F06", pk([TS, [{"type": "BlockStored",
                          "block_hashes": [H(b"example"), H(b"b2")],
                          "parent_block_hash": H(b"b1"),
                          "token_ids": list(range(32)), "block_size": 16,
                          "lora_id": None, "medium": "GPU",
                          "lora_name": None}], 0]))
    case("F06b", pk([TS, [["BlockStored", [H(b"example"), L(b"b2")],
                           H(b"b1"), list(range(32)), 16, None, "GPU"],
                          ["BlockRemoved", [H(b"example")], "GPU"]], 0]))
    case("F06c", pk([TS, [["BlockRemoved", [H(b"example")[:7]], "GPU"],
                          ["BlockRemoved", [H(b"example")], "GPU"]], 0]))
    case("F07", pk([TS, [["BlockStored", [-5, -8885242862429187823],
                          -1985764632182427388, [1, 2, 3, 4], 4, None]], 0]))
    sgl = {"engine": "sglang"}
    case("F08", pk([TS, [{"type": "BlockStored",
                          "block_hashes": [-6573382371980181291],
                          "parent_block_hash": None,
                          "token_ids": [1, 2, 3, 4], "block_size": 4,
                          "lora_id": None, "medium": "CPU_PINNED",
                          "cache_salt": "tenant-a", "session_id": "req-1"},
                         {"type": "BlockRemoved",
                          "block_hashes": [-6573382371980181291]}], 0]), sgl)
    case("F09", pk([TS, [{"type": "BlockStored", "block_hashes": [42],
                          "parent_block_hash": None,
                          "token_ids": [[21, 22], [22, 23], [23, 24],
                                        [24, 25]],
                          "block_size": 4, "lora_id": None}], 0]), sgl)
    h = -6573382371980181291
    salted_map = ["BlockStored", [h], None, [1, 2, 3, 4], 4, None, "GPU",
                  {"cache_salt": "tenant-a"}]
    salted_str = ["BlockStored", [h], None, [1, 2, 3, 4], 4, None, "GPU",
                  "tenant-a", "req-1"]
    case("F10", pk([TS, [salted_map], 0]), sgl)
    case("F10b", pk([TS, [salted_str], 0]), sgl)
    case("F10c", pk([TS, [salted_map], 0]))
    case("F10d", pk([TS, [salted_str], 0]))
    case("F11", pk([TS, [["BlockStored", [L(b"b1"), L(b"b2")], None,
                          list(range(32)), 16, 7, "GPU", "adapter",
                          [["adapter", ["mm-abc", 0], "salt-1",
                            bytes(range(32))],
                           ["adapter", ["mm-abc", -4]]], 0,
                          "full_attention", None]], 0]))
    case("F12", pk([TS, [["BlockStored", [1], None, [1, 2], 2, None],
                         {"type": "BlockMigrated", "block_hashes": [1],
                          "destination": "peer"},
                         ["BlockMigrated", [1], "peer"],
                         ["BlockRemoved", [1], "GPU"]], 0]))
    case("F13", pk([TS, [{"type": "BlockStored", "block_hashes": [1],
                          "parent_block_hash": None, "token_ids": [1, 2],
                          "block_size": 2, "lora_id": None, "medium": "GPU",
                          "lora_name": None,
                          "future_field": {"nested": True, 5: [1.5, None]},
                          "locality": "LOCAL", "ownership": "kvcr",
                          "session_id": "s"},
                         ["BlockRemoved", [1], "GPU", 0, "x", [1, 2], None]],
                    0, "extra"]))
    f14 = {"type": "BlockStored", "block_hashes": [L(b"b1")],
           "parent_block_hash": L(b"b2"), "token_ids": T16,
           "block_size": 16, "lora_id": None, "medium": "x" * 40,
           "lora_name": None, "extra_keys": [None], "group_idx": 0,
           "kv_cache_spec_kind": "sliding_window",
           "kv_cache_spec_sliding_window": 4096, "locality": "LOCAL",
           "ownership": "kvcr", "session_id": "s\t\"q\"\x01",
           "skipped_parent_block_hash": None, "skipped_token_ids": [],
           "skipped_extra_keys": None}
    p14 = pk([TS, [f14], 0])
    assert b"\xde\x00\x12" in p14 and b"\xd9\x28" in p14
    case("F14", p14)

    f04 = pk([TS, [f04_event()], 0])
    cut = f04.index(b"\xcf") + 1 + 5
    case("F15a", f04[:cut])
    case("F15b", b"\x93")
    case("F15c", b"")

    ok = ["AllBlocksCleared"]
    case("F16a", pk([TS, [{"type": "BlockRemoved", "block_hashes": "nope"},
                          ok], 0]))
    case("F16b", pk([TS, [{"type": "BlockStored", "block_hashes": [1],
                           "parent_block_hash": None, "token_ids": [1],
                           "block_size": "16", "lora_id": None,
                           "medium": None}, ok], 0]))
    case("F16c", pk([TS, [["BlockStored", [1], None, [1, -1], 2, None], ok],
                     0]))
    case("F16d", pk(["now", [ok], 0]))
    case("F16e", pk([TS, [5, ok], 0]))
    case("F16f", pk([TS, [[1, [1]], ok], 0]))
    case("F16g", pk([TS, [[None, [1]], ok], 0]))
    case("F16h", pk({"not": "a batch"}))
    case("F16i", pk([1700000000, [ok], 0]))

    ts_bytes = b"\xcb" + struct.pack(">d", TS)
    case("F17a", b"\x92" + ts_bytes + b"\xdd\xff\xff\xff\xff")
    case("F17b", b"\x93" + ts_bytes + b"\x91\x82" + pk("type") +
         pk("BlockRemoved") + pk("block_hashes") +
         b"\xdd\x7f\xff\xff\xff\x01\x02\x03" + b"\x00")
    big = b"\x93" + ts_bytes + b"\x91\x96" + pk("BlockStored") + \
        b"\x91\x01\xc0\xdd\x00\x10\x00\x00" + b"\x07" * (1 << 20) + \
        b"\x10\xc0\x00"
    case("F17c", big)
    case("F17c_cap", big, {"max_tokens": (1 << 20) - 1})
    case("F17d", b"\x93" + ts_bytes + b"\x91\xdf\xff\xff\xff\xff\x00")


def main():
    build()
    os.makedirs(OUT, exist_ok=True)
    for name, payload, opts, error in CASES:
        with open(os.path.join(OUT, name + ".bin"), "wb") as f:
            f.write(payload)
        with open(os.path.join(OUT, name + ".ndjson"), "w",
                  encoding="utf-8", newline="\n") as f:
            f.write(expect(payload, opts, error))
        opath = os.path.join(OUT, name + ".opts")
        if opts:
            with open(opath, "w") as f:
                for k, v in opts.items():
                    f.write("%s=%s\n" % (k, v))
        elif os.path.exists(opath):
            os.remove(opath)
    print("wrote %d fixtures to %s" % (len(CASES), OUT))


if __name__ == "__main__":
    main()
