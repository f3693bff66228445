#!/usr/bin/python3
"""Engines that misbehave, for kvsub's and kvreplay's hardening tests.

--replay URI binds a ROUTER that never goes quiet: it answers every
request ["", start8] (with or without the delimiter) with a stale reply
every --every seconds, for ever: the batch of seq start-1 (seq 0 when
start is 0), a seq the client already holds or never asked for.  A
client that restarts its silence timer on every reply never stops
waiting.  With --trickle the replies are new instead: seq start, start+1,
... one every --every seconds and never the end marker, an engine too slow
to ever finish, which only an overall deadline ends.

--pub URI binds a PUB (an XPUB that waits for a subscriber with
--wait-subs) and publishes the seqs of --seqs (e.g. "0-2,10-12") at
--rate batches per second, then holds until killed.  --big N makes the
batch at --big-seq a frame of N bytes (a msgpack bin, not a batch), for
message size caps; --wide N makes it a valid batch whose one event carries
an extra key of N control characters (each becomes 6 bytes of JSON), for
line size caps.  --payload FILE publishes FILE's bytes for every seq instead;
--frames LIST (e.g. "2,1,3") sends the n-th message in the n-th layout:
3 is [topic, seq8, payload], 2 older ATOM's [topic, payload] and 1 its
[payload] (docs/protocol.md#rocm-atom); the last count goes on for the rest.

Uses only python3-zmq and python3-msgpack (run it with /usr/bin/python3).
"""

import argparse
import os
import signal
import sys
import time

import msgpack
import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import layouts  # noqa: E402
from peer import TS0, parse_list  # noqa: E402

stop = False


def on_term(signum, frame):
    global stop
    stop = True


def batch(seq, wide=0):
    """A small valid vLLM batch for seq: one BlockStored of one block."""
    ev = {"type": "BlockStored", "block_hashes": [1000 + seq],
          "parent_block_hash": None, "token_ids": list(range(16)),
          "block_size": 16, "lora_id": None}
    if wide:
        ev["extra_keys"] = ["\x01" * wide]
    return layouts.encode_batch(TS0 + seq * 0.125, [ev], 0, "vllm")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replay", help="hostile replay ROUTER URI (bound)")
    ap.add_argument("--every", type=float, default=0.1,
                    help="seconds between stale replies (default 0.1)")
    ap.add_argument("--trickle", action="store_true",
                    help="--replay answers with new seqs, never the end")
    ap.add_argument("--pub", help="PUB URI (bound)")
    ap.add_argument("--seqs", default="", help="seqs to publish, in order")
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--wait-subs", action="store_true")
    ap.add_argument("--big", type=int, default=0,
                    help="bytes of the frame at --big-seq")
    ap.add_argument("--big-seq", type=int, default=-1)
    ap.add_argument("--wide", type=int, default=0,
                    help="control characters in the event at --big-seq")
    ap.add_argument("--payload", help="publish this file's bytes as-is")
    ap.add_argument("--frames", default="3",
                    help="frames of each message in turn: 3, 2 or 1")
    ap.add_argument("--ready", help='write "ready" here once bound')
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    ctx = zmq.Context()
    router = pub = None
    if args.replay:
        router = ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.bind(args.replay)
    if args.pub:
        pub = ctx.socket(zmq.XPUB if args.wait_subs else zmq.PUB)
        pub.setsockopt(zmq.LINGER, 0)
        pub.setsockopt(zmq.SNDHWM, 100000)
        pub.bind(args.pub)
    if args.ready:
        with open(args.ready + ".tmp", "w") as f:
            f.write("ready\n")
        os.rename(args.ready + ".tmp", args.ready)
    if pub is not None and args.wait_subs:
        while not stop and not pub.poll(100):
            pass
        if not stop:
            pub.recv()

    todo = sorted(parse_list(args.seqs))
    frames = [int(n) for n in args.frames.split(",")]
    fixed = None
    if args.payload:
        with open(args.payload, "rb") as f:
            fixed = f.read()
    askers = {}  # identity -> (delimited, start)
    gap = 1.0 / args.rate if args.rate > 0 else 0.0
    next_pub = time.monotonic()
    next_stale = time.monotonic()
    while not stop:
        now = time.monotonic()
        if pub is not None and todo and now >= next_pub:
            seq = todo.pop(0)
            if seq == args.big_seq and args.wide:
                payload = batch(seq, args.wide)
            elif seq == args.big_seq:
                payload = msgpack.packb(b"\0" * args.big)
            elif fixed is not None:
                payload = fixed
            else:
                payload = batch(seq)
            n = frames.pop(0) if len(frames) > 1 else frames[0]
            msg = [b"", seq.to_bytes(8, "big"), payload]
            pub.send_multipart({3: msg, 2: [b"", payload], 1: [payload]}[n])
            next_pub = now + gap
        if router is not None and askers and now >= next_stale:
            for ident, (delim, start) in askers.items():
                if args.trickle:
                    seq = start
                    askers[ident] = (delim, start + 1)
                else:
                    seq = start - 1 if start > 0 else 0
                head = [ident, b""] if delim else [ident]
                router.send_multipart(head + [seq.to_bytes(8, "big"),
                                              batch(seq)])
            next_stale = now + args.every
        wait = 0.02
        if router is not None and router.poll(int(wait * 1000)):
            parts = router.recv_multipart()
            delim = len(parts) >= 3 and parts[1] == b""
            seq8 = parts[-1]
            if len(seq8) == 8:
                askers[parts[0]] = (delim, int.from_bytes(seq8, "big"))
        elif router is None:
            time.sleep(wait)
    ctx.destroy(linger=0)


if __name__ == "__main__":
    main()
