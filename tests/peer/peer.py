#!/usr/bin/python3
"""An independent engine emulation: a PUB stream, a replay ROUTER and,
optionally, vLLM's snapshot ROUTER.

It publishes KV-cache event batches the way vLLM and SGLang do
(docs/protocol.md#frames, #batches, #replay): three frames [topic, seq8,
payload] on a PUB socket, and a ROUTER that answers ["", start8] with one message per
buffered batch with seq >= start, then the end marker (seq ff x 8, empty
payload).  The ROUTER keeps libzmq's default SNDHWM (1000), like the
engine's, so a client that falls behind loses replies.  It uses only
python3-zmq and python3-msgpack (run it with /usr/bin/python3), never kvtap
code, so kvtap's decoder and encoder are never their own witnesses.

Extensions beyond the shared brief (documented in --help): --pub may be left
out (replay only), --done FILE, --model, --mute-replay, --drop-end N,
--pub-connect, --replay-drop LIST, --payload FILE, --quiet, --atom (a ROUTER in the style of
ATOM's: replies without the empty delimiter, the end marker's payload
msgpack([oldest, latest])), --ts0 (the first batch's ts, so that a restarted
engine process can be told apart by its timestamps); and vLLM's snapshot mode
(docs/protocol.md#snapshots): --stream-ids (24-byte seq frames), --heartbeats
LIST (empty batches), --snapshot URI and --snapshot-unavailable (the
snapshot ROUTER, whose snapshot here is every event the current process
published, 256 per chunk), --withhold-new LIST (seqs of the restarted
process not sent live).
"""

import argparse
import collections
import json
import os
import random
import signal
import sys
import time

import msgpack
import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import layouts  # noqa: E402

END_SEQ = b"\xff" * 8
GARBAGE = b"\xc1\xc1garbage"
TS0 = 1700000000.0

stop = False


def on_term(signum, frame):
    global stop
    stop = True


def parse_list(s):
    """'3,5-7' -> {3, 5, 6, 7}."""
    out = set()
    if not s:
        return out
    for part in s.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            out.update(range(int(a), int(b) + 1))
        else:
            out.add(int(part))
    return out


def synth_events(seq, layout, rng):
    """Deterministic events: mostly stores of 1-4 16-token blocks."""
    n = rng.choice((1, 1, 2, 3, 4, 4, 5, 6, 8))
    evs = []
    sglang = layout.startswith("sglang")
    for _ in range(n):
        r = rng.random()
        if r < 0.02:
            evs.append({"type": "AllBlocksCleared"})
            continue
        nb = rng.randint(1, 4)
        hashes = []
        for _ in range(nb):
            h = rng.getrandbits(64)
            if sglang:
                h = h - (1 << 64) if h >= (1 << 63) else h
            hashes.append(h)
        if not sglang and layout != "v090" and rng.random() < 0.05:
            hashes = [rng.getrandbits(256).to_bytes(32, "big")
                      for _ in range(nb)]
        if r < 0.75:
            parent = None if rng.random() < 0.3 else rng.getrandbits(63)
            toks = [rng.randint(0, 150000) for _ in range(16 * nb)]
            ev = {"type": "BlockStored", "block_hashes": hashes,
                  "parent_block_hash": parent, "token_ids": toks,
                  "block_size": 16, "lora_id": None, "medium": "GPU"}
            if sglang:
                if rng.random() < 0.1:
                    ev["cache_salt"] = "salt-%d" % rng.randint(0, 9)
            else:
                ev["lora_name"] = None
                ev["extra_keys"] = [None] * nb
                ev["group_idx"] = 0
                ev["kv_cache_spec_kind"] = "full_attention"
            evs.append(ev)
        else:
            ev = {"type": "BlockRemoved", "block_hashes": hashes[:1],
                  "medium": "GPU"}
            if not sglang:
                ev["group_idx"] = 0
            evs.append(ev)
    return evs


def read_input(path):
    """NDJSON events grouped into batches (consecutive lines of one seq)."""
    batches = []
    cur_key = object()
    envelope = {"pod", "model", "dp_rank", "seq", "i", "ts", "type",
                "block_digests", "parent_block_digest"}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            o = json.loads(line)
            t = o.get("type")
            if t not in ("BlockStored", "BlockRemoved", "AllBlocksCleared"):
                continue
            key = (o.get("pod"), o.get("dp_rank"), o.get("seq"))
            if key != cur_key or o.get("seq") is None:
                batches.append({"ts": o.get("ts"), "rank": o.get("dp_rank"),
                                "events": []})
                cur_key = key
            ev = {"type": t}
            digests = o.get("block_digests") or []
            for k, v in o.items():
                if k in envelope:
                    continue
                if k == "block_hashes" and v is not None:
                    hs = []
                    for j, h in enumerate(v):
                        d = digests[j] if j < len(digests) else None
                        hs.append(bytes.fromhex(d) if d else _hash_in(h))
                    v = hs
                elif k == "parent_block_hash" and v is not None:
                    d = o.get("parent_block_digest")
                    v = bytes.fromhex(d) if d else _hash_in(v)
                ev[k] = v
            batches[-1]["events"].append(ev)
    return batches


def _hash_in(h):
    if isinstance(h, str):
        return int(h, 16) if h.startswith("0x") else int(h)
    return h


def main():
    ap = argparse.ArgumentParser(
        description="Engine emulation: PUB stream + replay ROUTER.",
        epilog="The ROUTER keeps libzmq's default SNDHWM 1000, like vLLM's.")
    ap.add_argument("--pub", help="PUB URI (bound; omit for replay only)")
    ap.add_argument("--pub-connect", action="store_true",
                    help="connect the PUB instead of binding it")
    ap.add_argument("--replay", help="replay ROUTER URI (bound)")
    ap.add_argument("--layout", default="vllm", choices=layouts.LAYOUTS)
    ap.add_argument("--topic", default="")
    ap.add_argument("--reply-topic", action="store_true",
                    help='replies as ["", topic, seq, payload]')
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--input", help="publish the events of an NDJSON file")
    ap.add_argument("--payload", action="append", default=[],
                    help="publish this file's bytes as one batch's payload "
                    "(repeatable; a golden fixture, tests/peer/producers.py)")
    ap.add_argument("--start-seq", type=int, default=0)
    ap.add_argument("--rank", default="0", help='int, or "none" for nil')
    ap.add_argument("--withhold", default="",
                    help="seqs kept for replay but not sent live")
    ap.add_argument("--withhold-new", default="",
                    help="seqs the restarted process does not send live")
    ap.add_argument("--stream-ids", action="store_true",
                    help="vLLM snapshot mode: 24-byte seq frames, seq + a "
                    "16-byte stream id per process")
    ap.add_argument("--snapshot", help="snapshot ROUTER URI (bound): answers "
                    "any request with [seq, stream id, chunk, ...]")
    ap.add_argument("--snapshot-unavailable", action="store_true",
                    help="answer snapshot requests with seq -2")
    ap.add_argument("--heartbeats", default="",
                    help="batch indices published empty, [ts, [], rank], "
                    "like an idle engine in snapshot mode")
    ap.add_argument("--forget", default="",
                    help="seqs neither sent live nor kept for replay")
    ap.add_argument("--buffer", type=int, default=10000,
                    help="replay ring capacity")
    ap.add_argument("--restart-after", type=int, default=None,
                    help="after K batches the sequence restarts at 0")
    ap.add_argument("--garbage", default="",
                    help="seqs whose payload is invalid msgpack")
    ap.add_argument("--bad-frames", default="",
                    help="seqs sent live as malformed messages (even: 2 "
                    "parts, [topic, seq8], no payload; odd: 7-byte seq); "
                    "the replay buffer keeps them intact")
    ap.add_argument("--wait-subs", type=int, default=0,
                    help="XPUB: wait for N subscriptions first")
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--rate", type=float, default=0.0,
                    help="batches per second (0 = as fast as possible)")
    ap.add_argument("--hold", type=float, default=5.0,
                    help="serve replay this long after publishing")
    ap.add_argument("--pod", default="pod")
    ap.add_argument("--model", default=None)
    ap.add_argument("--expect", help="write the expected NDJSON here")
    ap.add_argument("--ready", help='write "ready" here once bound')
    ap.add_argument("--done", help='write "done" here once all published')
    ap.add_argument("--replay-delay", type=float, default=0.0,
                    help="seconds to wait before answering a replay request")
    ap.add_argument("--requested",
                    help='write "requested" here when a replay request '
                    "arrives, before --replay-delay")
    ap.add_argument("--mute-replay", action="store_true",
                    help="bind the ROUTER but never answer")
    ap.add_argument("--drop-end", type=int, default=0,
                    help="leave out the end marker of the first N replays")
    ap.add_argument("--replay-drop", default="",
                    help="seqs left out of the first replay answer, as "
                    "the ROUTER's HWM would drop them")
    ap.add_argument("--throttle-replay", action="store_true",
                    help="accepted for compatibility; the ROUTER always "
                    "keeps libzmq's default SNDHWM 1000")
    ap.add_argument("--atom", action="store_true",
                    help="replies without the empty delimiter; end marker "
                    "payload msgpack([oldest, latest]); requests with or "
                    "without the delimiter")
    ap.add_argument("--ts0", type=float, default=TS0,
                    help="ts of the first batch (each next one +0.125)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    rank = None if args.rank.lower() in ("none", "nil", "null") \
        else int(args.rank)
    if args.layout == "v090":
        rank = None
    withhold = parse_list(args.withhold)
    withhold_new = parse_list(args.withhold_new)
    heartbeats = parse_list(args.heartbeats)
    forget = parse_list(args.forget)
    garbage = parse_list(args.garbage)
    bad_frames = parse_list(args.bad_frames)
    replay_drop = parse_list(args.replay_drop)
    topic = args.topic.encode()

    # Build every batch first: (seq, ts, rank, events, payload, epoch).
    raw = []
    if args.payload:
        src = []
        for path in args.payload:
            with open(path, "rb") as f:
                raw.append(f.read())
            src.append({"ts": None, "rank": rank, "events": []})
    elif args.input:
        src = read_input(args.input)
    else:
        src = []
        for k in range(args.count):
            rng = random.Random(1000003 * k + 17)
            events = synth_events(k, args.layout, rng)
            if k in heartbeats:
                events = []
            src.append({"ts": None, "rank": rank, "events": events})
    batches = []
    seq = args.start_seq
    epoch = 0
    for k, b in enumerate(src):
        if args.restart_after is not None and k == args.restart_after:
            seq = 0
            epoch = 1
        ts = b["ts"] if b["ts"] is not None else args.ts0 + k * 0.125
        brank = b["rank"] if args.input else rank
        if args.layout == "v090":
            brank = None
        if raw:
            payload = raw[k]
        elif seq in garbage and epoch == 0:
            payload = GARBAGE
        else:
            payload = layouts.encode_batch(ts, b["events"], brank,
                                           args.layout)
        batches.append((seq, ts, brank, b["events"], payload, epoch))
        seq += 1

    if args.expect:
        write_expect(args, batches, garbage)

    ctx = zmq.Context()
    pub = None
    if args.pub:
        pub = ctx.socket(zmq.XPUB if args.wait_subs else zmq.PUB)
        pub.setsockopt(zmq.SNDHWM, 100000)
        pub.setsockopt(zmq.LINGER, 1000)
        if args.pub_connect:
            pub.connect(args.pub)
        else:
            pub.bind(args.pub)
    router = None
    if args.replay:
        router = ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.bind(args.replay)

    snap = None
    if args.snapshot:
        snap = ctx.socket(zmq.ROUTER)
        snap.setsockopt(zmq.LINGER, 0)
        snap.bind(args.snapshot)
    # What the current process published: its last seq and every event, in
    # order (a snapshot as a replay program: the events, 256 per chunk).
    state = {"requests": 0, "last": -1, "epoch": 0, "events": [], "ts": TS0}

    def serve_snapshot():
        while snap is not None:
            try:
                frames = snap.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            envelope = frames[:frames.index(b"") + 1] if b"" in frames \
                else frames[:1]
            seq = -2 if args.snapshot_unavailable else state["last"]
            reply = [seq.to_bytes(8, "big", signed=True),
                     stream_id(state["epoch"])]
            evs = state["events"] if seq >= 0 else []
            for k in range(0, len(evs), 256):
                reply.append(layouts.encode_batch(
                    state["ts"], evs[k:k + 256], rank, args.layout))
            snap.send_multipart(envelope + reply)
    buf = collections.deque(maxlen=max(args.buffer, 0) or None)
    if args.buffer == 0:
        buf = collections.deque(maxlen=0)

    def serve(timeout_ms):
        serve_snapshot()
        if router is None:
            if timeout_ms:
                time.sleep(timeout_ms / 1000.0)
            return
        if not router.poll(timeout_ms):
            return
        while True:
            try:
                frames = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if args.atom and len(frames) == 2:
                frames = [frames[0], b"", frames[1]]
            if len(frames) != 3 or frames[1] != b"":
                log(args, "invalid replay request (%d frames)" % len(frames))
                continue
            if args.requested:
                with open(args.requested, "w") as f:
                    f.write("requested\n")
            if args.mute_replay:
                continue
            if args.replay_delay > 0:
                time.sleep(args.replay_delay)
            ident = frames[0]
            head = [ident] if args.atom else [ident, b""]
            start = int.from_bytes(frames[2], "big")
            state["requests"] += 1
            n = 0
            for s, payload in list(buf):
                if s < start:
                    continue
                if state["requests"] == 1 and s in replay_drop:
                    continue
                if args.reply_topic:
                    router.send_multipart(head + [topic, s.to_bytes(8, "big"),
                                                  payload])
                else:
                    router.send_multipart(head + [s.to_bytes(8, "big"),
                                                  payload])
                n += 1
            if state["requests"] > args.drop_end:
                end = b""
                if args.atom:
                    seqs = [s for s, _ in buf]
                    end = msgpack.packb([seqs[0] if seqs else -1,
                                         seqs[-1] if seqs else -1])
                if args.reply_topic:
                    router.send_multipart(head + [b"", END_SEQ, end])
                else:
                    router.send_multipart(head + [END_SEQ, end])
            log(args, "replay from %d: %d batches" % (start, n))

    if args.ready:
        write_file(args.ready, "ready\n")
    if args.wait_subs and pub is not None:
        subs = 0
        while subs < args.wait_subs and not stop:
            if pub.poll(100):
                msg = pub.recv()
                if msg[:1] == b"\x01":
                    subs += 1
            serve(0)
    if args.delay > 0:
        end = time.monotonic() + args.delay
        while not stop and time.monotonic() < end:
            serve(min(100, max(1, int((end - time.monotonic()) * 1000))))

    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    next_t = time.monotonic()
    cur_epoch = 0
    for seq, ts, brank, events, payload, epoch in batches:
        if stop:
            break
        if epoch != cur_epoch:
            # A new engine process: its replay buffer starts empty.
            buf.clear()
            cur_epoch = epoch
            state.update(epoch=epoch, last=-1, events=[])
        serve(0)
        if interval:
            next_t += interval
            while not stop:
                left = next_t - time.monotonic()
                if left <= 0:
                    break
                serve(max(1, int(left * 1000)))
        if seq in forget:
            continue
        buf.append((seq, payload))
        state["last"] = seq
        state["ts"] = ts
        state["events"].extend(events)
        if seq in withhold or pub is None:
            continue
        if epoch == 1 and seq in withhold_new:
            continue
        s8 = seq.to_bytes(8, "big")
        if args.stream_ids:
            s8 += stream_id(epoch)
        if seq in bad_frames:
            if seq % 2 == 0:
                # Not older ATOM's [topic, payload]: the second frame is
                # not a batch (docs/protocol.md#rocm-atom).
                pub.send_multipart([topic, s8])
            else:
                pub.send_multipart([topic, s8[1:], payload])
        else:
            pub.send_multipart([topic, s8, payload])

    if args.done:
        write_file(args.done, "done\n")
    end = time.monotonic() + args.hold
    while not stop and time.monotonic() < end:
        serve(min(100, max(1, int((end - time.monotonic()) * 1000))))
    if pub is not None:
        pub.close(0)
    if router is not None:
        router.close(0)
    if snap is not None:
        snap.close(0)
    ctx.term()
    return 0


def stream_id(epoch):
    """The 16-byte stream id of publisher process number epoch."""
    return bytes([0xa0 + epoch]) * 8 + bytes(range(8))


def with_stream(line, epoch):
    """line with the "stream" key kvsub adds in snapshot mode."""
    return line.replace(',"seq":', ',"stream":"%s","seq":'
                        % stream_id(epoch).hex(), 1)


def write_expect(args, batches, garbage):
    lines = []
    prev = None
    forget = parse_list(args.forget)
    for seq, ts, brank, events, payload, epoch in batches:
        if prev is not None and epoch != prev[1]:
            lines.append(layouts.record_line(
                args.pod, seq, "restart", rank=brank, ts=ts,
                model=args.model, last_seq=prev[0]))
            if args.stream_ids:
                lines[-1] = with_stream(lines[-1], epoch)
        prev = (seq, epoch)
        if seq in forget:
            continue
        if payload == GARBAGE:
            # The error text is the decoder's; "*" means "any".
            lines.append(layouts.record_line(
                args.pod, seq, "decode_error", rank=None, ts=None,
                model=args.model, error="*", bytes=len(payload)))
            continue
        batch = layouts.expected_ndjson(
            args.pod, seq, ts, brank, events, model=args.model,
            layout=args.layout)
        if args.stream_ids:
            batch = [with_stream(ln, epoch) for ln in batch]
        lines.extend(batch)
    tmp = args.expect + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for ln in lines:
            f.write(ln + "\n")
    os.replace(tmp, args.expect)


def write_file(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def log(args, msg):
    if not args.quiet:
        print("peer: " + msg, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
