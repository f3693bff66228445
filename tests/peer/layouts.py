"""Engine payload layouts and the NDJSON kvtap must print for them.

This module is the independent reference the C code is tested against: it
builds the msgpack bytes an engine sends (following msgspec's rules:
python3-msgpack with use_bin_type=True gives the same bytes for these values,
docs/protocol.md#events) from plain Python event dicts, and renders the NDJSON
lines a subscriber must print for a batch, per docs/ndjson.md.  It never calls kvtap code.

An event is a dict with "type" ("BlockStored", "BlockRemoved",
"AllBlocksCleared") and the engine's own field names.  A missing key means
None.  Hashes are Python ints (signed or unsigned 64-bit) or bytes (raw
digests).  Unknown keys (not engine fields) are carried by the map layouts
after the known ones, in dict order, and rendered as unknown fields.

Layouts:
  vllm            [ts, events, rank], tagged-map events (vLLM >= #42892)
  vllm-array      [ts, events, rank], legacy arrays, 12 / 4 / 1 elements
  vllm-map-batch  {"ts", "events", "data_parallel_rank"}, map events
  sglang          [ts, events, attn_dp_rank], SGLang tagged-map events
  v090            [ts, events], 6-element stored / 2-element removed arrays
  sglang-array    [ts, events, rank], SGLang arrays: stored 7 elements
                  (+ cache_salt at 7, + session_id at 8 when set), removed 3
  atom            [ts, events, rank], ROCm ATOM's arrays: vLLM's 12 stored
                  slots + token_offset, removed 4, cleared [tag, medium],
                  BlockTransferred [tag, hashes, from, to, group_idx]
"""

import math
import msgpack

LAYOUTS = ("vllm", "vllm-array", "vllm-map-batch", "sglang", "v090",
           "sglang-array", "atom")

# NDJSON field order (enum kv_field in lib/event.h).
FIELD_ORDER = (
    "block_hashes", "parent_block_hash", "token_ids", "block_size",
    "lora_id", "medium", "lora_name", "extra_keys", "group_idx",
    "kv_cache_spec_kind", "kv_cache_spec_sliding_window", "locality",
    "ownership", "cache_salt", "session_id", "mm_keys", "object_key",
    "token_offset", "from_medium", "to_medium", "remaining_copy_counts",
    "origin", "skipped_parent_block_hash", "skipped_token_ids",
    "skipped_extra_keys",
)
KNOWN = set(FIELD_ORDER) | {"type"}

# Always written to NDJSON (null when absent): kv_required_fields().
REQUIRED_NDJSON = {
    "BlockStored": ("block_hashes", "parent_block_hash", "token_ids",
                    "block_size", "lora_id", "medium"),
    "BlockRemoved": ("block_hashes", "medium"),
    "AllBlocksCleared": (),
}

# vLLM declaration order; (name, required) -- required fields are never
# omitted from a map, optional ones are omitted when None.
VLLM_FIELDS = {
    "BlockStored": (
        ("block_hashes", True), ("parent_block_hash", True),
        ("token_ids", True), ("block_size", True), ("lora_id", True),
        ("medium", True), ("lora_name", True), ("extra_keys", False),
        ("group_idx", False), ("kv_cache_spec_kind", False),
        ("kv_cache_spec_sliding_window", False), ("locality", False),
        ("ownership", False), ("session_id", False),
    ),
    "BlockRemoved": (
        ("block_hashes", True), ("medium", True), ("group_idx", False),
        ("locality", False), ("ownership", False),
    ),
    "AllBlocksCleared": (),
}

# The legacy array slots (after the tag) of the newest array-era vLLM.
VLLM_ARRAY_SLOTS = {
    "BlockStored": ("block_hashes", "parent_block_hash", "token_ids",
                    "block_size", "lora_id", "medium", "lora_name",
                    "extra_keys", "group_idx", "kv_cache_spec_kind",
                    "kv_cache_spec_sliding_window"),
    "BlockRemoved": ("block_hashes", "medium", "group_idx"),
    "AllBlocksCleared": (),
}

# ATOM's msgspec array_like structs (atom/.../kv_events.py).
ATOM_SLOTS = {
    "BlockStored": VLLM_ARRAY_SLOTS["BlockStored"] + ("token_offset",),
    "BlockRemoved": ("block_hashes", "medium", "group_idx"),
    "AllBlocksCleared": ("medium",),
    "BlockTransferred": ("block_hashes", "from_medium", "to_medium",
                         "group_idx"),
}

V090_SLOTS = {
    "BlockStored": ("block_hashes", "parent_block_hash", "token_ids",
                    "block_size", "lora_id"),
    "BlockRemoved": ("block_hashes",),
    "AllBlocksCleared": (),
}

SGLANG_FIELDS = {
    "BlockStored": (
        ("block_hashes", True), ("parent_block_hash", True),
        ("token_ids", True), ("block_size", True), ("lora_id", True),
        ("medium", False), ("cache_salt", False), ("session_id", False),
    ),
    "BlockRemoved": (("block_hashes", True), ("medium", False)),
    "AllBlocksCleared": (),
}

U64 = (1 << 64) - 1


def engine_of(layout):
    """The --engine value a decoder needs for this layout."""
    return "sglang" if layout.startswith("sglang") else "vllm"


def _tuple_to_list(v):
    if isinstance(v, (list, tuple)):
        return [_tuple_to_list(x) for x in v]
    if isinstance(v, dict):
        return {k: _tuple_to_list(x) for k, x in v.items()}
    return v


def _map_event(ev, fields):
    """A tagged map: "type" first, declared fields, then unknown keys."""
    out = {"type": ev["type"]}
    for name, required in fields[ev["type"]]:
        val = ev.get(name)
        if val is None and not required:
            continue
        out[name] = val
    for k, v in ev.items():
        if k not in KNOWN:
            out[k] = v
    return out


def _array_event(ev, slots):
    return [ev["type"]] + [ev.get(name) for name in slots[ev["type"]]]


def _sglang_array_event(ev):
    t = ev["type"]
    if t == "BlockStored":
        arr = [t] + [ev.get(n) for n in SGLANG_ARRAY_BASE]
        if ev.get("cache_salt") is not None or \
                ev.get("session_id") is not None:
            arr.append(ev.get("cache_salt"))
        if ev.get("session_id") is not None:
            arr.append(ev.get("session_id"))
        return arr
    if t == "BlockRemoved":
        return [t, ev.get("block_hashes"), ev.get("medium")]
    return [t]


SGLANG_ARRAY_BASE = ("block_hashes", "parent_block_hash", "token_ids",
                     "block_size", "lora_id", "medium")


def wire_event(ev, layout):
    """The Python object msgspec would encode for one event."""
    if layout in ("vllm", "vllm-map-batch"):
        return _map_event(ev, VLLM_FIELDS)
    if layout == "vllm-array":
        return _array_event(ev, VLLM_ARRAY_SLOTS)
    if layout == "v090":
        return _array_event(ev, V090_SLOTS)
    if layout == "atom":
        return _array_event(ev, ATOM_SLOTS)
    if layout == "sglang":
        return _map_event(ev, SGLANG_FIELDS)
    if layout == "sglang-array":
        return _sglang_array_event(ev)
    raise ValueError("unknown layout %r" % layout)


def wire_batch(ts, events, rank, layout):
    """The Python object for a whole batch (before packb)."""
    evs = [wire_event(e, layout) for e in events]
    ts = float(ts)
    if layout == "vllm-map-batch":
        out = {"ts": ts, "events": evs}
        if rank is not None:
            out["data_parallel_rank"] = rank
        return out
    if layout == "v090":
        return [ts, evs]
    return [ts, evs, rank]


def encode_batch(ts, events, rank, layout="vllm"):
    """The payload bytes an engine of this layout publishes."""
    return msgpack.packb(_tuple_to_list(wire_batch(ts, events, rank, layout)),
                         use_bin_type=True)


# ---------------------------------------------------------------------------
# Expected NDJSON, rendered independently of the C writer.

def json_str(s):
    if isinstance(s, bytes):
        s = s.decode("utf-8", errors="replace")
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20:
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def json_double(v):
    if math.isnan(v) or math.isinf(v):
        return "null"
    # Integral values below 2^53 print without a fraction, as kvtap's
    # writer does; others as the shortest round-trip text.
    if v == int(v) and abs(v) < 2.0 ** 53:
        return str(int(v))
    return repr(v)


def json_generic(v):
    """msgpack value -> JSON text, per the team's generic conversion."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return json_double(v)
    if isinstance(v, str):
        return json_str(v)
    if isinstance(v, (bytes, bytearray)):
        return '"' + bytes(v).hex() + '"'
    if isinstance(v, msgpack.ExtType):
        return '"' + v.data.hex() + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(json_generic(x) for x in v) + "]"
    if isinstance(v, dict):
        parts = []
        for k, x in v.items():
            if isinstance(k, str):
                ks = json_str(k)
            elif isinstance(k, bool) or k is None or isinstance(k, int):
                ks = json_str(json_generic(k))
            else:
                ks = json_str(json_generic(k))
            parts.append(ks + ":" + json_generic(x))
        return "{" + ",".join(parts) + "}"
    raise TypeError("cannot render %r" % (v,))


def canonical_hash(h):
    """The u64 of a hash: two's complement of an int, last 8 bytes of bin."""
    if isinstance(h, (bytes, bytearray)):
        return int.from_bytes(bytes(h)[-8:], "big")
    return h & U64


def _hash_text(h):
    return '"%d"' % canonical_hash(h)


def _field_text(name, v):
    if v is None:
        return "null"
    if name == "block_hashes":
        return "[" + ",".join(_hash_text(h) for h in v) + "]"
    if name in ("parent_block_hash", "skipped_parent_block_hash"):
        return _hash_text(v)
    if name == "token_ids":
        return json_generic(v)
    if name in ("block_size", "lora_id", "group_idx",
                "kv_cache_spec_sliding_window", "token_offset"):
        return str(int(v))
    if name in ("extra_keys", "mm_keys", "remaining_copy_counts", "origin",
                "skipped_token_ids", "skipped_extra_keys"):
        return json_generic(v)
    return json_str(v)


def carried_fields(ev, layout):
    """(present: {name: value}, unknown: [(key, value)]) as the wire has it.

    Decodes the wire object back by position or key, so the expectation
    follows what a decoder sees rather than what the generator meant.
    """
    obj = msgpack.unpackb(
        msgpack.packb(_tuple_to_list(wire_event(ev, layout)),
                      use_bin_type=True),
        raw=False, strict_map_key=False)
    t = ev["type"]
    present = {}
    unknown = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "type":
                continue
            if k in FIELD_ORDER:
                present[k] = v
            else:
                unknown.append((k, v))
        return present, unknown
    if layout == "vllm-array":
        slots = VLLM_ARRAY_SLOTS[t]
    elif layout == "atom":
        slots = ATOM_SLOTS[t]
    elif layout == "v090":
        slots = V090_SLOTS[t]
    elif t == "BlockStored":
        slots = SGLANG_ARRAY_BASE + ("cache_salt", "session_id")
    elif t == "BlockRemoved":
        slots = ("block_hashes", "medium")
    else:
        slots = ()
    for idx, v in enumerate(obj[1:], start=1):
        if idx - 1 < len(slots):
            present[slots[idx - 1]] = v
        else:
            unknown.append(("@%d" % idx, v))
    return present, unknown


def _envelope(pod, model, rank, seq, i, ts, typ):
    parts = ['"pod":' + json_str(pod)]
    if model is not None:
        parts.append('"model":' + json_str(model))
    parts.append('"dp_rank":' + ("null" if rank is None else str(int(rank))))
    parts.append('"seq":%d' % seq)
    if i is not None:
        parts.append('"i":%d' % i)
    if ts is not None:
        parts.append('"ts":' + json_double(float(ts)))
    parts.append('"type":' + json_str(typ))
    return parts


def event_line(pod, seq, ts, rank, i, ev, layout="vllm", model=None):
    """One engine event's NDJSON line (no trailing newline)."""
    t = ev["type"]
    parts = _envelope(pod, model, rank, seq, i, ts, t)
    present, unknown = carried_fields(ev, layout)
    for name in FIELD_ORDER:
        if name in present:
            parts.append('"%s":%s' % (name, _field_text(name, present[name])))
        elif name in REQUIRED_NDJSON.get(t, ()):
            parts.append('"%s":null' % name)
    hashes = present.get("block_hashes") or []
    if any(isinstance(h, (bytes, bytearray)) for h in hashes):
        parts.append('"block_digests":[' + ",".join(
            ('"' + bytes(h).hex() + '"') if isinstance(h, (bytes, bytearray))
            else "null" for h in hashes) + "]")
    parent = present.get("parent_block_hash")
    if isinstance(parent, (bytes, bytearray)):
        parts.append('"parent_block_digest":"' + bytes(parent).hex() + '"')
    for k, v in unknown:
        parts.append(json_str(k) + ":" + json_generic(v))
    return "{" + ",".join(parts) + "}"


def expected_ndjson(pod, seq, ts, rank, events, model=None, layout="vllm"):
    """The lines (list of str, no newlines) a subscriber prints for a batch.

    Engine events in wire order with "i"; the ranks of layouts without one
    (v090) are null.
    """
    if layout == "v090":
        rank = None
    return [event_line(pod, seq, ts, rank, i, ev, layout, model)
            for i, ev in enumerate(events)]


def record_line(pod, seq, typ, rank=None, ts=None, model=None, **extra):
    """A stream record (gap, restart, decode_error, skipped) line."""
    parts = _envelope(pod, model, rank, seq, None, ts, typ)
    for k, v in extra.items():
        parts.append(json_str(k) + ":" + json_generic(v))
    return "{" + ",".join(parts) + "}"
