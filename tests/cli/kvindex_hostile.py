"""Hostile and busy clients for kvindex's socket (tests/cli/kvindex_hostile.bats).

Each mode prints one JSON line: measurements the bats file asserts bounds
on, or (refused) the line the server answered.
Usage: kvindex_hostile.py MODE SOCKET SERVER_PID [ARGS...]
"""

import json
import os
import selectors
import socket
import subprocess
import sys
import time


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def connect(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    return s


def call(path, req, timeout=30.0):
    """One request on a fresh connection: (reply object, seconds)."""
    t0 = time.monotonic()
    s = connect(path)
    s.settimeout(timeout)
    s.sendall(req + b"\n")
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return json.loads(data) if data else None, time.monotonic() - t0


def ping_worst(path, seconds):
    """The slowest of the pings sent one after another for seconds."""
    worst = 0.0
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end or n == 0:
        reply, dt = call(path, b'{"op":"ping"}')
        assert reply is not None and reply["ok"], reply
        worst = max(worst, dt)
        n += 1
    return worst


def dump_hogs(path, pid, n, hold):
    """n clients ask for a dump each and never read it."""
    base = rss_kb(pid)
    hogs = []
    for _ in range(n):
        s = connect(path)
        s.sendall(b'{"op":"dump"}\n')
        hogs.append(s)
    peak = base
    worst = 0.0
    end = time.monotonic() + hold
    while time.monotonic() < end:
        worst = max(worst, ping_worst(path, 0.2))
        peak = max(peak, rss_kb(pid))
    # A hog disconnected by the server sees its stream end early.
    closed = 0
    for s in hogs:
        s.setblocking(False)
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    closed += 1
                    break
        except (BlockingIOError, ConnectionResetError):
            pass
        s.close()
    return {"rss_base_kb": base, "rss_peak_kb": peak,
            "ping_worst_s": round(worst, 3), "hogs_closed": closed}


def slowloris(path, pid, n, hold):
    """n clients trickle a request at one byte a second."""
    ss = []
    refused = 0
    for _ in range(n):
        try:
            ss.append(connect(path))
        except OSError:
            refused += 1
    worst = 0.0
    end = time.monotonic() + hold
    req = b'{"op":"ping"}'
    i = 0
    while time.monotonic() < end:
        t = time.monotonic()
        for s in ss:
            try:
                s.send(req[i % len(req):i % len(req) + 1])
            except OSError:
                pass
        i += 1
        worst = max(worst, ping_worst(path, 0.2))
        time.sleep(max(0.0, 1.0 - (time.monotonic() - t)))
    alive = 0
    for s in ss:
        s.setblocking(False)
        try:
            alive += s.recv(1) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
        s.close()
    return {"ping_worst_s": round(worst, 3), "connected": len(ss) - refused,
            "still_open": alive}


def partial(path, pid, n, size, hold):
    """n clients send size bytes of a request that never ends."""
    base = rss_kb(pid)
    ss = []
    blob = b'{"op":"ping","pad":"' + b"x" * size
    for _ in range(n):
        s = connect(path)
        s.settimeout(5)
        try:
            s.sendall(blob)
        except OSError:
            pass
        s.setblocking(False)
        ss.append(s)
    time.sleep(0.5)
    peak = rss_kb(pid)
    end = time.monotonic() + hold
    while time.monotonic() < end:
        peak = max(peak, rss_kb(pid))
        time.sleep(0.2)
    after = rss_kb(pid)
    closed = 0
    for s in ss:
        try:
            closed += s.recv(65536) != b"" or 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        s.close()
    return {"rss_base_kb": base, "rss_peak_kb": peak, "rss_after_kb": after,
            "closed": closed}


def ingest(path, pid, n_clients, depth, fifo, infile, lines):
    """Ingest rate of infile through fifo while n_clients query flat out,
    each with depth requests outstanding."""
    sel = selectors.DefaultSelector()
    req = (b'{"op":"match","model":"m","tokens":[1,2,3,4,5,6,7,8,9,10,11,12,'
           b'13,14,15,16]}\n')
    for _ in range(n_clients):
        s = connect(path)
        s.setblocking(False)
        s.send(req * depth)
        sel.register(s, selectors.EVENT_READ)
    feeder = subprocess.Popen(["sh", "-c", 'cat "$1" >"$2"', "sh", infile,
                               fifo])
    t0 = time.monotonic()
    served = 0
    next_check = t0
    done = None
    while done is None and time.monotonic() - t0 < 120:
        # Replies are counted, not parsed, and each is replaced by a new
        # request at once: the clients must outrun the server.
        for key, _ in sel.select(timeout=0.05):
            s = key.fileobj
            chunk = s.recv(65536)
            if not chunk:
                sel.unregister(s)
                continue
            n = chunk.count(b"\n")
            served += n
            if n:
                s.send(req * n)
        now = time.monotonic()
        if now >= next_check:
            next_check = now + 0.02
            reply, _ = call(path, b'{"op":"stats"}')
            if reply["data"]["lines"] >= lines:
                done = now
    feeder.wait()
    dt = (done or time.monotonic()) - t0
    return {"lines_per_s": int(lines / dt), "seconds": round(dt, 2),
            "queries_per_s": int(served / dt), "clients": n_clients,
            "depth": depth,
            "lines_per_query": round(lines / served, 2) if served else None}


def refused(path, hold):
    """Holds hold answered connections, then prints what one more gets
    before its end (a refusal: one error line)."""
    held = []
    for _ in range(hold):
        s = connect(path)
        s.sendall(b'{"op":"ping"}\n')
        s.recv(4096)
        held.append(s)
    s = connect(path)
    s.settimeout(10)
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    for h in held:
        h.close()
    return data.decode()


def main():
    mode, path, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
    a = sys.argv[4:]
    if mode == "dump":
        out = dump_hogs(path, pid, int(a[0]), float(a[1]))
    elif mode == "slowloris":
        out = slowloris(path, pid, int(a[0]), float(a[1]))
    elif mode == "partial":
        out = partial(path, pid, int(a[0]), int(a[1]), float(a[2]))
    elif mode == "ingest":
        out = ingest(path, pid, int(a[0]), int(a[1]), a[2], a[3], int(a[4]))
    elif mode == "refused":
        sys.stdout.write(refused(path, int(a[0])))
        return
    else:
        sys.exit("unknown mode " + mode)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
