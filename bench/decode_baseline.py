#!/usr/bin/python3
"""The baseline for bench/10-decode.sh: plain Python msgpack + json.

    /usr/bin/python3 bench/decode_baseline.py STREAM [SECONDS]

Decodes the same recorded stream as bench_decode (4-byte big-endian length,
then a payload) the way a simple Python subscriber would: msgpack.unpackb,
then one json.dumps line per event with the envelope and the hashes as
decimal strings, appended to an in-memory buffer that is emptied every
1 MiB.  Prints "python EVENTS_PER_SECOND" (CPU time, like bench_decode, so a
loaded machine skews both sides alike).
"""

import json
import struct
import sys
import time

import msgpack


def load(path):
    data = open(path, "rb").read()
    out, off = [], 0
    while off + 4 <= len(data):
        (n,) = struct.unpack_from(">I", data, off)
        off += 4
        out.append(data[off:off + n])
        off += n
    return out


def one_pass(payloads):
    events = 0
    buf, size = [], 0
    for seq, p in enumerate(payloads):
        ts, evs, rank = msgpack.unpackb(p, raw=False, strict_map_key=False)
        for i, ev in enumerate(evs):
            line = {"pod": "bench", "dp_rank": rank, "seq": seq, "i": i,
                    "ts": ts}
            for k, v in ev.items():
                if k == "block_hashes":
                    v = [str(h & 0xFFFFFFFFFFFFFFFF) for h in v]
                elif k == "parent_block_hash" and v is not None:
                    v = str(v & 0xFFFFFFFFFFFFFFFF)
                line[k] = v
            s = json.dumps(line, separators=(",", ":"))
            buf.append(s)
            size += len(s) + 1
            if size >= 1 << 20:
                buf, size = [], 0
            events += 1
    return events


def main():
    payloads = load(sys.argv[1])
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    one_pass(payloads[:1000])
    events = 0
    t0 = time.process_time()
    while True:
        events += one_pass(payloads)
        t = time.process_time() - t0
        if t >= secs:
            break
    print("python %.0f" % (events / t))


if __name__ == "__main__":
    main()
