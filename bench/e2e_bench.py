#!/usr/bin/python3
"""End-to-end benchmark over tcp loopback: kvsub next to its baselines.

    /usr/bin/python3 bench/e2e_bench.py BINDIR BENCHDIR STREAM

STREAM is a recorded stream from bench/gen_stream.py (4-byte big-endian
length, payload; current vLLM layout).  Each run binds a publisher's XPUB on
127.0.0.1 (SNDHWM 100000, the engine's default), starts one subscriber,
waits for its subscription and sends every batch as [topic, seq8, payload]
as fast as it can.  The subscriber stops when it has everything (or after
1 s of silence, which is then not counted).  Printed per run: events
received, loss, events/s from the first send to the subscriber's exit, and
the subscriber's CPU time (user + system, all threads).

Publishers: "C" (BENCHDIR/e2e_zmq pub: libzmq as fast as it goes) and
"py" (pyzmq in this process, like the engine's own Python publisher).
Subscribers: "floor" (BENCHDIR/e2e_zmq count: receive whole messages and
count, nothing else), "kvsub" (decode, sequence tracking, NDJSON to a file),
"kvindex" (`kvsub | kvindex serve --exit-on-eof`: the index fed live, its
events counted by serve's --stats line; CPU is both processes') and
"python" (pyzmq + msgpack + json.dumps per event to a file, same RCVHWM
as kvsub), the plain consumer kvsub replaces.

When KVTAP_BENCH_SUMMARY names a file, the kvindex pipeline's rate as a
fraction of the floor's goes into `make bench`'s summary (bench/summary.py),
or "lost N" when it did not keep up without loss.
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


def load(path):
    out = []
    with open(path, "rb") as f:
        data = f.read()
    off = 0
    while off + 4 <= len(data):
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


def python_sub(uri, expected):
    """The baseline subscriber (runs in a child process, NDJSON on stdout)."""
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, HWM)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(uri)
    got = 0
    out = sys.stdout
    while got < expected:
        if not sub.poll(int(IDLE * 1000)):
            break
        _topic, seq8, payload = sub.recv_multipart()
        seq = int.from_bytes(seq8, "big")
        batch = msgpack.unpackb(payload, raw=False)
        ts, events = batch[0], batch[1]
        rank = batch[2] if len(batch) > 2 else None
        for i, ev in enumerate(events):
            d = {"pod": "p", "dp_rank": rank, "seq": seq, "i": i, "ts": ts}
            d.update(ev)
            if d.get("block_hashes") is not None:
                d["block_hashes"] = [str(h & 0xFFFFFFFFFFFFFFFF)
                                     for h in d["block_hashes"]]
            if d.get("parent_block_hash") is not None:
                d["parent_block_hash"] = str(d["parent_block_hash"])
            out.write(json.dumps(d, separators=(",", ":")) + "\n")
            got += 1
    out.flush()
    print(json.dumps({"events": got}), file=sys.stderr)


class Bench:
    def __init__(self, bindir, benchdir, stream):
        self.kvsub = os.path.join(bindir, "kvsub")
        self.kvindex = os.path.join(bindir, "kvindex")
        self.zmqtool = os.path.join(benchdir, "e2e_zmq")
        self.stream = stream
        self.payloads = load(stream)
        self.per_batch = [len(msgpack.unpackb(p)[1]) for p in self.payloads]
        self.expected = sum(self.per_batch)
        self.tmp = tempfile.mkdtemp(prefix="kvtap-e2e-")

    def sub_argv(self, name, uri):
        n = str(self.expected)
        if name == "kvsub":
            return [self.kvsub, "-q", "-c", n, "--idle", "1s", uri]
        if name == "python":
            return [sys.executable, os.path.abspath(__file__), "sub", uri, n]
        if name == "kvindex":
            # The shell waits for both, so its rusage counts both.
            return ["/bin/sh", "-c",
                    '"$0" -q -c "$1" --idle 1s "$2" | '
                    '"$3" serve -q -s "$4" --exit-on-eof --stats',
                    self.kvsub, n, uri, self.kvindex,
                    os.path.join(self.tmp, "kvindex.sock")]
        return [self.zmqtool, "count", uri, str(len(self.payloads))]

    def events_got(self, name, out_path, err_path):
        if name == "kvindex":
            with open(err_path) as f:
                st = json.loads(f.read().strip().splitlines()[-1])["events"]
            return sum(st[t] for t in ("BlockStored", "BlockRemoved",
                                       "AllBlocksCleared"))
        if name == "python":
            with open(err_path) as f:
                return json.loads(f.read().strip().splitlines()[-1])["events"]
        if name == "floor":
            with open(out_path) as f:
                batches = int(f.read().strip() or 0)
            return sum(self.per_batch[:batches])
        n = 0
        with open(out_path, "rb") as f:
            for line in f:
                if b'"i":' in line:
                    n += 1
        return n

    def run(self, pubkind, name):
        uri = "tcp://127.0.0.1:%d" % free_port()
        out_path = os.path.join(self.tmp, name + ".out")
        err_path = out_path + ".err"
        if pubkind == "C":
            pub = subprocess.Popen([self.zmqtool, "pub", uri, self.stream],
                                   stdout=subprocess.PIPE)
            time.sleep(0.1)
        else:
            ctx = zmq.Context()
            sock = ctx.socket(zmq.XPUB)
            sock.setsockopt(zmq.SNDHWM, 100000)
            sock.setsockopt(zmq.LINGER, 10000)
            sock.bind(uri)
        with open(out_path, "w") as out, open(err_path, "w") as err:
            proc = subprocess.Popen(self.sub_argv(name, uri), stdout=out,
                                    stderr=err)
        if pubkind == "C":
            _, _, ru = os.wait4(proc.pid, 0)
            t_end = time.monotonic()
            t0, t_sent = (float(x) for x in pub.communicate()[0].split())
        else:
            sock.recv()
            t0 = time.monotonic()
            for seq, p in enumerate(self.payloads):
                sock.send_multipart([b"", seq.to_bytes(8, "big"), p])
            t_sent = time.monotonic()
            _, _, ru = os.wait4(proc.pid, 0)
            t_end = time.monotonic()
            sock.close()
            ctx.term()
        got = self.events_got(name, out_path, err_path)
        if got < self.expected:
            t_end -= IDLE
        secs = max(t_end - t0, 1e-9)
        cpu = ru.ru_utime + ru.ru_stime
        r = {"events": got, "rate": got / secs, "cpu": cpu}
        lost = self.expected - got
        print("%-2s -> %-6s %8d events  lost %6d (%5.2f%%)  %6.2f s "
              "%9.0f events/s  cpu %5.2f s  [sent in %.2f s]" %
              (pubkind, name, got, lost, 100.0 * lost / self.expected, secs,
               r["rate"], cpu, t_sent - t0))
        for p in (out_path, err_path):
            os.unlink(p)
        return r

    def close(self):
        os.rmdir(self.tmp)


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "sub":
        python_sub(sys.argv[2], int(sys.argv[3]))
        return 0
    b = Bench(sys.argv[1], sys.argv[2], sys.argv[3])
    nbytes = sum(len(p) for p in b.payloads)
    print("stream: %d batches, %d events, %.0f bytes/batch" %
          (len(b.payloads), b.expected, nbytes / len(b.payloads)))
    floor = b.run("C", "floor")
    kv = b.run("C", "kvsub")
    ix = b.run("C", "kvindex")
    py = b.run("C", "python")
    kv_py = b.run("py", "kvsub")
    b.close()
    print("kvsub/python %.1fx events/s (%.1fx per cpu-second); "
          "kvsub/floor %.2fx; kvsub loss %d (C publisher), %d (py publisher)"
          % (kv["rate"] / max(py["rate"], 1e-9),
             (kv["events"] / max(kv["cpu"], 1e-9)) /
             max(py["events"] / max(py["cpu"], 1e-9), 1e-9),
             kv["rate"] / max(floor["rate"], 1e-9),
             b.expected - kv["events"], b.expected - kv_py["events"]))
    ix_floor = ix["rate"] / max(floor["rate"], 1e-9)
    print("kvsub | kvindex serve / floor %.2fx (target >= 0.8x), loss %d"
          % (ix_floor, b.expected - ix["events"]))
    out = os.environ.get("KVTAP_BENCH_SUMMARY")
    if out:
        lost = b.expected - ix["events"]
        now = "%.2fx floor" % ix_floor if lost == 0 else "lost %d" % lost
        subprocess.run([sys.executable,
                        os.path.join(os.path.dirname(__file__), "summary.py"),
                        "add", out, "e2e_index", now,
                        "%.4f" % (ix_floor / 0.8 if lost == 0 else 0)],
                       check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
