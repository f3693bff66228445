"""Independent model of kvstat, for the tests: the same answers computed
from the same NDJSON in Python, written without looking at how the C code
stores anything.

  kvstat_model.py COMMAND [--every SECONDS] [--hist] [--holders]
                  [--capacity N] [--random-seed N] FILE...

It prints the NDJSON rows kvstat prints (same keys, same order, numbers
as the shortest round-trip decimal, integral ones without a fraction).

Where kvstat hashes a block's tokens chained on its parent's key, the model
keys a block by the tuple of every token of its prefix: two blocks have
equal keys exactly when their whole prefixes are equal, which is what a
chained key stands for, so no hash function is shared with the C code.
"""

import argparse
import json
import math
import sys
from collections import OrderedDict

U64 = (1 << 64) - 1


def num(v):
    """A number as kvstat prints it, by the rules of
    docs/ndjson.md#exact-rules-what-the-writer-does-and-the-tests-hold-it-to
    (shortest round-trip decimal, integral values without a fraction)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        raise TypeError(v)
    if isinstance(v, int):
        return str(v)
    if math.isfinite(v) and v == math.floor(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def row(pairs):
    out = []
    for k, v in pairs:
        val = json.dumps(v, ensure_ascii=False) if isinstance(v, str) else num(v)
        out.append(json.dumps(k) + ":" + val)
    return "{" + ",".join(out) + "}"


def read_events(files, time_order):
    """The events of every file, in input order or stably by ts."""
    evs = []
    last_ts = 0.0
    for f in files:
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(ev, dict) or "type" not in ev:
                    continue
                if ev.get("ts") is not None:
                    last_ts = float(ev["ts"])
                evs.append((last_ts, len(evs), ev))
    if time_order:
        evs.sort(key=lambda x: (x[0], x[1]))
    return [e for _, _, e in evs]


def h(v):
    return int(v) & U64


class Stream:
    def __init__(self, pod, rank):
        self.pod, self.rank = pod, rank
        self.c = {k: 0 for k in (
            "events", "BlockStored", "BlockRemoved", "AllBlocksCleared",
            "blocks_stored", "blocks_removed", "unknown_removed", "orphans",
            "peak", "gap", "lost", "restart", "decode_error", "skipped",
            "back", "computed", "elsewhere", "unkeyed", "keys_peak")}
        self.ts_min = self.ts_max = None
        self.blocks = {}   # (hash, medium) -> dict(ts, key, parent)
        self.keys = {}     # key -> number of blocks with it
        self.ever = set()
        self.buckets = {}  # interval -> [events, stored, removed, occ]
        self.life = {}     # medium -> [ended values, censored, negative]


class Model:
    def __init__(self, every=0.0, keys=False):
        self.every, self.want_keys = every, keys
        self.streams = []
        self.media = ["GPU"]
        self.holders = {}  # key -> set of stream indexes
        self.end = {}
        self.peak = {}
        self.ever = set()
        self.requests = []  # (stream index, prompt keys, new)
        self.block_size = 0  # of the first store that has one

    def stream(self, ev):
        pod = ev.get("pod", "-")
        rank = ev.get("dp_rank")
        for i, s in enumerate(self.streams):
            if s.pod == pod and s.rank == rank:
                return i
        self.streams.append(Stream(pod, rank))
        return len(self.streams) - 1

    def medium(self, ev, removal):
        m = ev.get("medium")
        if m is None or m == "":
            return None if removal else "GPU"
        if m not in self.media:
            self.media.append(m)
        return m

    def count_holders(self):
        counts = {}
        for hs in self.holders.values():
            counts[len(hs)] = counts.get(len(hs), 0) + 1
        for n, c in counts.items():
            self.peak[n] = max(self.peak.get(n, 0), c)
        self.end = counts

    def key_add(self, si, key):
        s = self.streams[si]
        s.keys[key] = s.keys.get(key, 0) + 1
        if s.keys[key] == 1:
            s.c["computed"] += 1
            if self.holders.get(key):
                s.c["elsewhere"] += 1
            self.holders.setdefault(key, set()).add(si)
            s.c["keys_peak"] = max(s.c["keys_peak"], len(s.keys))
            self.count_holders()
        s.ever.add(key)
        self.ever.add(key)

    def key_drop(self, si, key):
        s = self.streams[si]
        s.keys[key] -= 1
        if s.keys[key] == 0:
            del s.keys[key]
            self.holders[key].discard(si)
            if not self.holders[key]:
                del self.holders[key]
            self.count_holders()

    def end_block(self, si, hm, end_ts, censor):
        s = self.streams[si]
        b = s.blocks.pop(hm)
        life = s.life.setdefault(hm[1], [[], 0, 0])
        if censor or end_ts is None or b["ts"] is None:
            life[1] += 1
        elif end_ts < b["ts"]:
            life[2] += 1
        else:
            life[0].append(end_ts - b["ts"])
        if b["key"] is not None:
            self.key_drop(si, b["key"])

    def find(self, s, hsh):
        for m in self.media:
            if (hsh, m) in s.blocks:
                return s.blocks[(hsh, m)]
        return None

    @staticmethod
    def size_of(ev):
        hs = ev.get("block_hashes") or []
        toks = ev.get("token_ids") or []
        bs = ev.get("block_size")
        if not bs or bs <= 0:
            bs = len(toks) // len(hs) if hs and len(toks) % len(hs) == 0 else 0
        return bs

    def keys_of(self, s, ev, parent):
        hs = ev.get("block_hashes") or []
        toks = ev.get("token_ids") or []
        bs = self.size_of(ev)
        if bs == 0 or len(toks) != len(hs) * bs:
            return None
        prefix = parent["key"] if parent is not None else ()
        out = []
        for i in range(len(hs)):
            prefix = prefix + tuple(toks[i * bs:(i + 1) * bs])
            out.append(prefix)
        return out

    def prompt(self, s, parent, new):
        anc = []
        b = parent
        while b is not None:
            if b["key"] is None:
                return None
            anc.append(b["key"])
            if b["parent"] is None:
                break
            b = self.find(s, b["parent"])
            if b is None:
                return None
        return list(reversed(anc)) + new

    def stored(self, si, ev, ts):
        s = self.streams[si]
        m = self.medium(ev, False)
        hs = [h(x) for x in ev.get("block_hashes") or []]
        ph = ev.get("parent_block_hash")
        parent, keys, orphan = None, None, False
        if not self.block_size:
            self.block_size = self.size_of(ev)
        if ph is not None:
            parent = self.find(s, h(ph))
            if parent is None:
                s.c["orphans"] += 1
                orphan = True
        if self.want_keys and not orphan and (parent is None or parent["key"] is not None):
            keys = self.keys_of(s, ev, parent)
        if keys is not None:
            p = self.prompt(s, parent, keys)
            if p is not None:
                self.requests.append((si, p, len(keys)))
        s.c["blocks_stored"] += len(hs)
        for i, x in enumerate(hs):
            if (x, m) in s.blocks:
                continue
            par = hs[i - 1] if i > 0 else (h(ph) if ph is not None else None)
            s.blocks[(x, m)] = {"ts": ts, "key": keys[i] if keys else None,
                                "parent": par}
            s.c["peak"] = max(s.c["peak"], len(s.blocks))
            if keys is None:
                s.c["unkeyed"] += 1
            else:
                self.key_add(si, keys[i])

    def removed(self, si, ev, ts):
        s = self.streams[si]
        m = self.medium(ev, True)
        hs = [h(x) for x in ev.get("block_hashes") or []]
        s.c["blocks_removed"] += len(hs)
        for x in hs:
            ms = self.media if m is None else [m]
            hit = [(x, mm) for mm in ms if (x, mm) in s.blocks]
            for hm in hit:
                self.end_block(si, hm, ts, False)
            if not hit:
                s.c["unknown_removed"] += 1

    def apply(self, ev):
        t = ev["type"]
        pod = ev.get("pod", "-")
        if t in ("gap", "restart") and ev.get("dp_rank") is None:
            ranked = [s for s in self.streams
                      if s.pod == pod and s.rank is not None]
            for s in ranked:
                self.apply_to(self.streams.index(s), ev)
            if ranked:
                return
        self.apply_to(self.stream(ev), ev)

    def apply_to(self, si, ev):
        s = self.streams[si]
        t = ev["type"]
        ts = float(ev["ts"]) if ev.get("ts") is not None else None
        s.c["events"] += 1
        if t in s.c:
            s.c[t] += 1
        if ts is not None:
            if s.ts_max is None:
                s.ts_min = s.ts_max = ts
            elif ts < s.ts_max:
                s.c["back"] += 1
            else:
                s.ts_max = ts
            s.ts_min = min(s.ts_min, ts)
        if t == "BlockStored":
            self.stored(si, ev, ts)
        elif t == "BlockRemoved":
            self.removed(si, ev, ts)
        elif t in ("AllBlocksCleared", "restart"):
            for hm in list(s.blocks):
                self.end_block(si, hm, ts, t == "restart")
        elif t == "gap":
            s.c["lost"] += ev["to"] - ev["from"] + 1
        if self.every and ts is not None:
            b = s.buckets.setdefault(math.floor(ts / self.every), [0, 0, 0, 0])
            b[0] += 1
            n = len(ev.get("block_hashes") or [])
            if t == "BlockStored":
                b[1] += n
            elif t == "BlockRemoved":
                b[2] += n
            b[3] = len(s.blocks)

    def finish(self):
        for s in self.streams:
            for hm in list(s.blocks):
                life = s.life.setdefault(hm[1], [[], 0, 0])
                life[1] += 1

    def sorted_streams(self):
        return sorted(self.streams, key=lambda s: (
            s.pod.encode(), s.rank is not None, s.rank or 0))


def pct(v, p):
    rank = (len(v) * p + 99) // 100
    return v[max(rank, 1) - 1]


def binof(v):
    if not v > 0:
        return -10
    m, e = math.frexp(v)
    if m == 0.5:
        e -= 1
    return min(max(e, -10), 40)


def out_summary(md):
    for s in md.sorted_streams():
        c = s.c
        span = s.ts_max - s.ts_min if s.ts_max is not None else 0
        print(row([
            ("pod", s.pod), ("dp_rank", s.rank), ("events", c["events"]),
            ("stored_events", c["BlockStored"]),
            ("removed_events", c["BlockRemoved"]),
            ("cleared", c["AllBlocksCleared"]),
            ("blocks_stored", c["blocks_stored"]),
            ("blocks_removed", c["blocks_removed"]),
            ("unknown_removed", c["unknown_removed"]),
            ("orphans", c["orphans"]), ("peak_blocks", c["peak"]),
            ("final_blocks", len(s.blocks)), ("ts_first", s.ts_min),
            ("ts_last", s.ts_max),
            ("events_per_s", c["events"] / span if span > 0 else None),
            ("gaps", c["gap"]), ("lost_seqs", c["lost"]),
            ("restarts", c["restart"]), ("decode_errors", c["decode_error"]),
            ("skipped", c["skipped"]), ("ts_backwards", c["back"])]))


def out_rate(md, every):
    for s in md.sorted_streams():
        if not s.buckets:
            continue
        occ = 0
        for k in range(min(s.buckets), max(s.buckets) + 1):
            b = s.buckets.get(k)
            if b is not None:
                occ = b[3]
            b = b or [0, 0, 0, occ]
            print(row([("pod", s.pod), ("dp_rank", s.rank),
                       ("t", float(k) * every), ("events", b[0]),
                       ("stored_per_s", b[1] / every),
                       ("removed_per_s", b[2] / every),
                       ("occupancy", occ)]))


def media_order(md, s):
    return [m for m in md.media if m in s.life]


def out_lifetime(md, hist):
    for s in md.sorted_streams():
        for m in media_order(md, s):
            v, cens, neg = s.life[m]
            v = sorted(v)
            head = [("pod", s.pod), ("dp_rank", s.rank), ("medium", m)]
            if not hist:
                q = [pct(v, p) if v else None for p in (50, 90, 99, 100)]
                print(row(head + [("ended", len(v)), ("censored", cens),
                                  ("negative", neg), ("p50", q[0]),
                                  ("p90", q[1]), ("p99", q[2]),
                                  ("max", q[3])]))
                continue
            if not v:
                continue
            bins = [binof(x) for x in v]
            cum = 0
            for k in range(min(bins), max(bins) + 1):
                cnt = bins.count(k)
                cum += cnt
                print(row(head + [("le", math.ldexp(1.0, k)), ("count", cnt),
                                  ("cdf", cum / len(v))]))


def out_sharing(md, holders):
    if holders:
        for n in range(1, len(md.streams) + 1):
            print(row([("holders", n), ("blocks_end", md.end.get(n, 0)),
                       ("blocks_peak", md.peak.get(n, 0))]))
        return
    tot = [0, 0, 0]
    for s in md.sorted_streams():
        c = s.c
        tot = [tot[0] + c["computed"], tot[1] + c["elsewhere"],
               tot[2] + c["unkeyed"]]
        print(share_row(s.pod, s.rank, len(s.ever), c["computed"],
                        c["elsewhere"], c["unkeyed"]))
    print(share_row(None, None, len(md.ever), *tot))


def share_row(pod, rank, distinct, computed, elsewhere, unkeyed):
    return row([("pod", pod), ("dp_rank", rank), ("distinct", distinct),
                ("computed", computed), ("elsewhere", elsewhere),
                ("share", elsewhere / computed if computed else None),
                ("unkeyed", unkeyed)])


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & U64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & U64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & U64
    return state, z ^ (z >> 31)


def simulate(md, policy, caps, seed):
    n = len(md.streams)
    pods = [OrderedDict() for _ in range(n)]
    used = [0] * n
    rng = seed
    reqs = blocks = hits = 0
    for q, (si, keys, _new) in enumerate(md.requests):
        def depth(p):
            d = 0
            while d < len(keys) and keys[d] in pods[p]:
                d += 1
            return d
        if policy == "capture_lru":
            p = si
        elif policy == "longest_prefix":
            p = min(range(n), key=lambda i: (-depth(i), used[i], i))
        elif policy == "round_robin":
            p = q % n
        else:
            rng, r = splitmix64(rng)
            p = r % n
        reqs += 1
        blocks += len(keys)
        hits += depth(p)
        used[p] += 1
        for k in reversed(keys):
            pods[p][k] = True
            pods[p].move_to_end(k, last=True)
            if caps[p] and len(pods[p]) > caps[p]:
                pods[p].popitem(last=False)
    return reqs, blocks, hits


def load_requests(md, path, bs):
    """Real prompts: one JSON array (or {"token_ids": [...]}) per line."""
    bs = bs or md.block_size
    md.requests = []
    for line in open(path, encoding="utf-8"):
        if not line.strip():
            continue
        v = json.loads(line)
        toks = v["token_ids"] if isinstance(v, dict) else v
        n = len(toks) // bs
        if n:
            md.requests.append(
                (0, [tuple(toks[:bs * (i + 1)]) for i in range(n)], n))


def out_route(md, capacity, seed, external):
    caps = [capacity if capacity is not None else s.c["keys_peak"]
            for s in md.streams]
    if capacity is None:
        # A stream that never held a keyed block: as large as the largest.
        caps = [c or max(caps) for c in caps]
    res = [("capture", len(md.requests),
            sum(len(k) for _, k, _ in md.requests),
            sum(len(k) - new for _, k, new in md.requests))]
    pols = ("capture_lru", "longest_prefix", "round_robin", "random")
    if external:
        res, pols = [], pols[1:]
    for pol in pols:
        res.append((pol,) + simulate(md, pol, caps, seed))
    for name, r, b, hit in res:
        print(row([("policy", name), ("requests", r), ("blocks", b),
                   ("hits", hit), ("hit_rate", hit / b if b else None),
                   ("computed", b - hit)]))


def seconds(s):
    """A duration as kvstat takes it: 250ms, 5s, 2m, 1h or plain seconds,
    converted the way kvstat does (whole milliseconds, rounded up)."""
    for unit, ms in (("ms", 1), ("s", 1000), ("m", 60000), ("h", 3600000)):
        if s.endswith(unit) and not (unit == "s" and s.endswith("ms")):
            return math.ceil(float(s[:-len(unit)]) * ms) / 1000
    return math.ceil(float(s) * 1000) / 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command")
    ap.add_argument("files", nargs="+")
    ap.add_argument("--every", type=seconds, default=10.0)
    ap.add_argument("--hist", action="store_true")
    ap.add_argument("--holders", action="store_true")
    ap.add_argument("--capacity", type=int)
    ap.add_argument("--random-seed", type=int, default=1)
    ap.add_argument("--requests")
    ap.add_argument("--block-size", type=int, default=0)
    a = ap.parse_args()
    cmd = a.command
    timed = cmd in ("sharing", "route")
    md = Model(every=a.every if cmd == "rate" else 0.0, keys=timed)
    for ev in read_events(a.files, timed):
        md.apply(ev)
    md.finish()
    if cmd == "summary":
        out_summary(md)
    elif cmd == "rate":
        out_rate(md, a.every)
    elif cmd == "lifetime":
        out_lifetime(md, a.hist)
    elif cmd == "sharing":
        out_sharing(md, a.holders)
    elif cmd == "route":
        if a.requests:
            load_requests(md, a.requests, a.block_size)
        out_route(md, a.capacity, a.random_seed, bool(a.requests))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
