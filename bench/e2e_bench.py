#!/usr/bin/python3
"""End-to-end benchmark over tcp loopback: kvsub next to a Python subscriber.

    /usr/bin/python3 bench/e2e_bench.py KVSUB STREAM [BATCHES]

STREAM is a recorded stream from bench/gen_stream.py (4-byte big-endian
length, payload; current vLLM layout).  For each subscriber in turn, a
publisher in this process binds an XPUB on 127.0.0.1 (SNDHWM 100000, the
engine's default), waits for the subscription, then sends the batches as
[topic, seq8, payload] as fast as pyzmq can.  The subscriber ends when it
has every event (or after 1 s of silence, which is then not counted).
Events received, loss and events/s are printed per subscriber, and the
ratio kvsub / Python.  The publisher's own send rate is printed too: when a
subscriber's rate is close to it, the subscriber keeps up with the source.

The Python baseline is what a plain consumer does: pyzmq SUB (same
RCVHWM as kvsub), msgpack.unpackb, one json.dumps line per event.
"""

import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

import msgpack
import zmq

IDLE = 1.0
HWM = 1000000


def load(path, limit):
    out = []
    with open(path, "rb") as f:
        data = f.read()
    off = 0
    while off + 4 <= len(data) and (limit is None or len(out) < limit):
        (n,) = struct.unpack(">I", data[off:off + 4])
        out.append(data[off + 4:off + 4 + n])
        off += 4 + n
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def python_sub(uri, expected, out_path):
    """The baseline subscriber (runs in a child process)."""
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, HWM)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(uri)
    got = 0
    with open(out_path, "w") as out:
        while got < expected:
            if not sub.poll(int(IDLE * 1000)):
                break
            topic, seq8, payload = sub.recv_multipart()
            seq = int.from_bytes(seq8, "big")
            batch = msgpack.unpackb(payload, raw=False)
            ts, events = batch[0], batch[1]
            rank = batch[2] if len(batch) > 2 else None
            for i, ev in enumerate(events):
                d = {"pod": "p", "dp_rank": rank, "seq": seq, "i": i,
                     "ts": ts}
                d.update(ev)
                for k in ("block_hashes",):
                    if d.get(k) is not None:
                        d[k] = [str(h & 0xFFFFFFFFFFFFFFFF) for h in d[k]]
                if d.get("parent_block_hash") is not None:
                    d["parent_block_hash"] = str(d["parent_block_hash"])
                out.write(json.dumps(d, separators=(",", ":")) + "\n")
                got += 1
    print(json.dumps({"events": got}), file=sys.stderr)


def run_one(name, argv, payloads, expected, out_path, counter):
    port = free_port()
    uri = "tcp://127.0.0.1:%d" % port
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.SNDHWM, 100000)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(uri)
    err_path = out_path + ".err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen([a.replace("URI", uri) for a in argv],
                                stdout=out, stderr=err)
    if not pub.poll(10000):
        proc.kill()
        raise SystemExit("%s never subscribed" % name)
    pub.recv()
    t0 = time.monotonic()
    for seq, p in enumerate(payloads):
        pub.send_multipart([b"", seq.to_bytes(8, "big"), p])
    t_sent = time.monotonic()
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = status
    t_end = time.monotonic()
    pub.close(0)
    ctx.term()
    got = counter(out_path, err_path)
    if got < expected:
        t_end -= IDLE
    return {"name": name, "events": got, "lost": expected - got,
            "seconds": t_end - t0, "send_seconds": t_sent - t0,
            "rate": got / max(t_end - t0, 1e-9),
            "cpu": ru.ru_utime + ru.ru_stime}


def count_lines(out_path, err_path):
    n = 0
    with open(out_path, "rb") as f:
        for line in f:
            if b'"i":' in line:
                n += 1
    return n


def count_py(out_path, err_path):
    with open(err_path) as f:
        return json.loads(f.read().strip().splitlines()[-1])["events"]


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "sub":
        python_sub(sys.argv[2], int(sys.argv[3]), "/dev/stdout")
        return 0
    kvsub, stream = sys.argv[1], sys.argv[2]
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else None
    payloads = load(stream, limit)
    expected = sum(len(msgpack.unpackb(p)[1]) for p in payloads)
    nbytes = sum(len(p) for p in payloads)
    print("stream: %d batches, %d events, %.0f bytes/batch" %
          (len(payloads), expected, nbytes / len(payloads)))
    tmp = tempfile.mkdtemp(prefix="kvtap-e2e-")
    runs = [
        ("python", [sys.executable, os.path.abspath(__file__), "sub", "URI",
                    str(expected)], count_py),
        ("kvsub", [kvsub, "-q", "-c", str(expected), "--idle", "1s",
                   "--hwm", str(HWM), "URI"], count_lines),
    ]
    res = []
    for name, argv, counter in runs:
        r = run_one(name, argv, payloads, expected,
                    os.path.join(tmp, name + ".out"), counter)
        res.append(r)
        print("%-7s %9d events  lost %7d (%.2f%%)  %6.2f s  %10.0f events/s"
              "  cpu %.2f s (%.0f events/cpu-s)"
              "  [publisher sent in %.2f s: %.0f events/s]" %
              (name, r["events"], r["lost"], 100.0 * r["lost"] / expected,
               r["seconds"], r["rate"], r["cpu"],
               r["events"] / max(r["cpu"], 1e-9), r["send_seconds"],
               expected / max(r["send_seconds"], 1e-9)))
    for f in os.listdir(tmp):
        os.unlink(os.path.join(tmp, f))
    os.rmdir(tmp)
    py, kv = res
    print("kvsub / python end to end: %.1fx events/s, %.1fx events per "
          "cpu-second; kvsub loss %d of %d" %
          (kv["rate"] / max(py["rate"], 1e-9),
           (kv["events"] / max(kv["cpu"], 1e-9)) /
           max(py["events"] / max(py["cpu"], 1e-9), 1e-9),
           kv["lost"], expected))
    return 0


if __name__ == "__main__":
    sys.exit(main())
