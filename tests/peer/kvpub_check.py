"""Subscriber, replay client and checker for testing kvpub.

Independent of kvtap's C code: it receives kvpub's messages with pyzmq,
decodes the payloads with python msgpack, and builds the bytes an engine
would send for the same NDJSON events with tests/peer/layouts.py.

  kvpub_check.py sub URI --count N [--timeout S] [--hwm N] > got.jsonl
  kvpub_check.py replay URI --from S [--timeout S] [--raw-request HEX,...]
                 [--hwm N] [--pause S]
  kvpub_check.py expect FILE --layout L [--bytes-hashes] [--pod P]
  kvpub_check.py decode FILE --layout L [--bytes-hashes] [--pod P] < got.jsonl
  kvpub_check.py synthcheck < got.jsonl

sub/replay print one JSON object per message:
  {"frames": N, "topic": "...", "seq": S, "payload": "hex"}   (sub)
  {"frames": ["hex", ...]}                                    (replay)
expect prints {"seq": k, "payload": "hex"} per batch, k counting from 0.
decode checks that the received payloads, decoded here, carry the input
events (fields, hashes, ts, rank); it prints the differences and exits 1.
synthcheck checks a --synth stream: seqs from 0, every removal names a
cached block, every store's parent is cached, 16 tokens per hash; it
prints counts and the root blocks' hashes as one JSON line.
"""

import argparse
import json
import os
import sys
import time

import msgpack
import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import layouts  # noqa: E402

U64 = (1 << 64) - 1
ENVELOPE = ("pod", "model", "dp_rank", "seq", "i", "ts", "type")
RECORDS = ("gap", "restart", "decode_error", "skipped")


def read_batches(path, pod=None):
    """Groups NDJSON lines as kvpub does: by (pod, dp_rank, seq) change."""
    batches = []
    key = None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            raw = raw.strip()
            if not raw:
                continue
            line = json.loads(raw)
            if line.get("type") in RECORDS:
                continue
            if pod is not None and line.get("pod", "-") != pod:
                continue
            k = (line.get("pod", "-"), line.get("dp_rank"), line.get("seq"))
            if "seq" not in line or k != key or not batches:
                batches.append([])
            key = k if "seq" in line else None
            batches[-1].append(line)
    return batches


def to_hash(text, digest, layout, bytes_hashes):
    if bytes_hashes and digest is not None:
        return bytes.fromhex(digest)
    v = int(text, 0) if isinstance(text, str) else int(text)
    v &= U64
    if layout == "sglang" and v >= 1 << 63:
        return v - (1 << 64)  # SGLang hashes are signed
    return v


def line_event(line, layout, bytes_hashes):
    """An NDJSON line as a layouts.py event dict."""
    ev = {"type": line["type"]}
    digests = line.get("block_digests") or []
    for k, v in line.items():
        if k in ENVELOPE or k in ("block_digests", "parent_block_digest"):
            continue
        if k == "block_hashes" and v is not None:
            v = [to_hash(h, digests[i] if i < len(digests) else None,
                         layout, bytes_hashes) for i, h in enumerate(v)]
        elif k == "parent_block_hash" and v is not None:
            v = to_hash(v, line.get("parent_block_digest"), layout,
                        bytes_hashes)
        ev[k] = v
    return ev


def expected_payloads(path, layout, bytes_hashes, pod):
    out = []
    for b in read_batches(path, pod):
        first = b[0]
        evs = [line_event(x, layout, bytes_hashes) for x in b]
        out.append(layouts.encode_batch(first["ts"], evs,
                                        first.get("dp_rank"), layout))
    return out


def cmd_expect(a):
    for k, p in enumerate(expected_payloads(a.file, a.layout,
                                            a.bytes_hashes, a.pod)):
        print(json.dumps({"seq": k, "payload": p.hex()}))


def cmd_sub(a):
    ctx = zmq.Context()
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.RCVHWM, a.hwm)
    s.setsockopt(zmq.SUBSCRIBE, b"")
    s.setsockopt(zmq.LINGER, 0)
    s.connect(a.uri)
    if a.ready:
        with open(a.ready, "w") as f:
            f.write("ready\n")
    got = 0
    deadline = time.monotonic() + a.timeout
    while got < a.count:
        left = deadline - time.monotonic()
        if left <= 0 or not s.poll(int(left * 1000)):
            break
        fr = s.recv_multipart()
        rec = {"frames": len(fr)}
        if len(fr) == 3:
            rec["topic"] = fr[0].decode("utf-8", "replace")
            rec["seq"] = int.from_bytes(fr[1], "big")
            rec["payload"] = fr[2].hex()
        print(json.dumps(rec), flush=True)
        got += 1
    s.close()
    ctx.term()
    return 0 if got >= a.count else 1


def cmd_replay(a):
    ctx = zmq.Context()
    d = ctx.socket(zmq.DEALER)
    d.setsockopt(zmq.LINGER, 0)
    d.setsockopt(zmq.RCVHWM, a.hwm)
    d.connect(a.uri)
    if a.raw_request is not None:
        req = [bytes.fromhex(x) for x in a.raw_request.split(",")]
    else:
        req = [b"", a.start.to_bytes(8, "big")]
    d.send_multipart(req)
    time.sleep(a.pause)
    deadline = time.monotonic() + a.timeout + a.pause
    ended = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not d.poll(int(left * 1000)):
            break
        fr = d.recv_multipart()
        print(json.dumps({"frames": [x.hex() for x in fr]}), flush=True)
        # The end marker: [.., ff*8, ""], or ATOM's [ff*8, [oldest, latest]].
        if len(fr) >= 2 and fr[-2] == b"\xff" * 8 and (
                fr[-1] == b"" or len(fr) == 2):
            ended = True
            break
    d.close()
    ctx.term()
    return 0 if ended else 1


def canon(h):
    if isinstance(h, (bytes, bytearray)):
        return int.from_bytes(bytes(h)[-8:], "big")
    return h & U64


def wire_fields(ev, layout):
    """A decoded wire event as {field: value}, by key or by position."""
    if isinstance(ev, dict):
        return ev.get("type"), {k: v for k, v in ev.items() if k != "type"}
    t = ev[0]
    table = layouts.ATOM_SLOTS if layout == "atom" else \
        layouts.VLLM_ARRAY_SLOTS
    slots = table.get(t, ())
    return t, {name: ev[i + 1] for i, name in enumerate(slots)
               if i + 1 < len(ev)}


def compare_event(where, line, ev, layout, bytes_hashes, errs):
    t, got = wire_fields(ev, layout)
    if t != line["type"]:
        errs.append("%s: type %r, want %r" % (where, t, line["type"]))
        return
    want = {k: v for k, v in line.items()
            if k not in ENVELOPE and k not in ("block_digests",
                                               "parent_block_digest")}
    if layout == "sglang":
        # SGLang's structs have no lora_name, extra_keys, group_idx, ...
        names = {n for n, _ in layouts.SGLANG_FIELDS.get(t, ())}
        want = {k: v for k, v in want.items()
                if k in names or k not in layouts.FIELD_ORDER}
    for k in set(want) | set(got):
        w = want.get(k)
        g = got.get(k)
        if k == "block_hashes" and g is not None:
            if bytes_hashes and line.get("block_digests"):
                digs = [bytes(x).hex() if isinstance(x, bytes) else None
                        for x in g]
                if digs != line["block_digests"]:
                    errs.append("%s: digests %r" % (where, digs))
            g = [str(canon(x)) for x in g]
            w = [str(int(x, 0) & U64) if isinstance(x, str) else str(x & U64)
                 for x in w] if w is not None else None
        elif k == "parent_block_hash" and g is not None:
            if bytes_hashes and line.get("parent_block_digest"):
                if bytes(g).hex() != line["parent_block_digest"]:
                    errs.append("%s: parent digest" % where)
            g = str(canon(g))
            w = str(int(w, 0) & U64) if isinstance(w, str) else w
        if g != w:
            errs.append("%s: %s = %r, want %r" % (where, k, g, w))


def cmd_decode(a):
    batches = read_batches(a.file, a.pod)
    errs = []
    n = 0
    for k, raw in enumerate(sys.stdin):
        rec = json.loads(raw)
        if k >= len(batches):
            errs.append("message %d: no such batch in the input" % k)
            break
        if rec.get("seq") != k:
            errs.append("message %d: seq %r, want %d" % (k, rec.get("seq"),
                                                         k))
        obj = msgpack.unpackb(bytes.fromhex(rec["payload"]), raw=False,
                              strict_map_key=False)
        if isinstance(obj, dict):
            ts, evs = obj["ts"], obj["events"]
            rank = obj.get("data_parallel_rank")
        else:
            ts, evs, rank = obj[0], obj[1], obj[2]
        b = batches[k]
        if not isinstance(ts, float) or ts != float(b[0]["ts"]):
            errs.append("batch %d: ts %r, want %r" % (k, ts, b[0]["ts"]))
        if rank != b[0].get("dp_rank"):
            errs.append("batch %d: rank %r" % (k, rank))
        if len(evs) != len(b):
            errs.append("batch %d: %d events, want %d" % (k, len(evs),
                                                          len(b)))
            continue
        for i, (line, ev) in enumerate(zip(b, evs)):
            compare_event("batch %d event %d" % (k, i), line, ev, a.layout,
                          a.bytes_hashes, errs)
        n += 1
    if n != len(batches):
        errs.append("decoded %d batches, the input has %d" % (n,
                                                              len(batches)))
    for e in errs[:20]:
        print(e)
    return 1 if errs else 0


def cmd_synthcheck(a):
    """Checks a --synth stream (vllm layout) for a consistent block tree."""
    cached = {}
    errs = []
    stores = removes = blocks = 0
    roots = set()
    for k, raw in enumerate(sys.stdin):
        rec = json.loads(raw)
        ts, evs, rank = msgpack.unpackb(bytes.fromhex(rec["payload"]),
                                        raw=False)
        if rec["seq"] != k or rank != 0 or not isinstance(ts, float):
            errs.append("batch %d: seq %r rank %r ts %r" % (k, rec["seq"],
                                                           rank, ts))
        for ev in evs:
            t = ev["type"]
            if t == "BlockRemoved":
                for h in ev["block_hashes"]:
                    if cached.get(h, 0) == 0:
                        errs.append("batch %d: removes unknown %d" % (k, h))
                    else:
                        cached[h] -= 1
                removes += 1
            elif t == "BlockStored":
                p = ev["parent_block_hash"]
                if p is not None and cached.get(p, 0) == 0:
                    errs.append("batch %d: parent %d not cached" % (k, p))
                if p is None:
                    roots.add(ev["block_hashes"][0])
                if len(ev["token_ids"]) != a.block_size * len(
                        ev["block_hashes"]) or ev["block_size"] != \
                        a.block_size:
                    errs.append("batch %d: misaligned store" % k)
                for h in ev["block_hashes"]:
                    cached[h] = cached.get(h, 0) + 1
                stores += 1
                blocks += len(ev["block_hashes"])
            else:
                errs.append("batch %d: unexpected %s" % (k, t))
    for e in errs[:20]:
        print(e, file=sys.stderr)
    print(json.dumps({"stores": stores, "removes": removes,
                      "blocks": blocks, "cached": sum(cached.values()),
                      "roots": sorted(str(r) for r in roots)}))
    return 1 if errs else 0


def main():
    ap = argparse.ArgumentParser()
    sp = ap.add_subparsers(dest="cmd", required=True)
    s = sp.add_parser("sub")
    s.add_argument("uri")
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--timeout", type=float, default=10)
    s.add_argument("--hwm", type=int, default=100000)
    s.add_argument("--ready")
    r = sp.add_parser("replay")
    r.add_argument("uri")
    r.add_argument("--from", dest="start", type=int, default=0)
    r.add_argument("--timeout", type=float, default=5)
    r.add_argument("--raw-request")
    r.add_argument("--hwm", type=int, default=0,
                   help="DEALER receive HWM (default 0: unlimited)")
    r.add_argument("--pause", type=float, default=0,
                   help="seconds to wait before reading the replies")
    c = sp.add_parser("synthcheck")
    c.add_argument("--block-size", type=int, default=16)
    for name in ("expect", "decode"):
        e = sp.add_parser(name)
        e.add_argument("file")
        e.add_argument("--layout", default="vllm")
        e.add_argument("--bytes-hashes", action="store_true")
        e.add_argument("--pod")
    a = ap.parse_args()
    fn = {"sub": cmd_sub, "replay": cmd_replay, "expect": cmd_expect,
          "decode": cmd_decode, "synthcheck": cmd_synthcheck}[a.cmd]
    sys.exit(fn(a) or 0)


if __name__ == "__main__":
    main()
