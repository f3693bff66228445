#!/usr/bin/python3
"""refindex.py - an independent reference model of kvindex (docs/kvindex.md),
used for a randomized differential test of `kvindex serve`.

Written from the spec alone: XXH64 in pure Python (Debian's python3 has no
xxhash module by default), the aibrix chained key, namespaces (model, LoRA),
per-pod engine maps with media, orphan/misaligned/block-size rejection,
removal per medium, AllBlocksCleared/restart clear, gap -> degraded, more
than --degraded-orphans (100) orphaned stores since the last clear or
restart -> degraded, an unknown namespace -> an error, ties in depth ordered
by the blocks each pod holds, then name (docs/kvindex.md#answers).

    refindex.py selftest                 check XXH64 and key vectors
    refindex.py diff KVINDEX SOCKDIR [--seed N] [--events N] [--queries N]
        run KVINDEX serve, feed it a random stream in phases, compare every
        match answer with the model's; exit 0 when all agree.
"""
import json
import os
import random
import socket
import subprocess
import sys
import time

M64 = (1 << 64) - 1
P1 = 11400714785074694791
P2 = 14029467366897019727
P3 = 1609587929392839161
P4 = 9650029242287828579
P5 = 2870177450012600261


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M64


def _round(acc, lane):
    acc = (acc + lane * P2) & M64
    return (_rotl(acc, 31) * P1) & M64


def _merge(h, v):
    h ^= _round(0, v)
    return (h * P1 + P4) & M64


def xxh64(data, seed=0):
    """XXH64 as specified in xxhash's doc/xxhash_spec.md."""
    n = len(data)
    i = 0
    if n >= 32:
        v = [(seed + P1 + P2) & M64, (seed + P2) & M64, seed & M64,
             (seed - P1) & M64]
        while i + 32 <= n:
            for k in range(4):
                lane = int.from_bytes(data[i + 8 * k:i + 8 * k + 8], "little")
                v[k] = _round(v[k], lane)
            i += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) +
             _rotl(v[3], 18)) & M64
        for k in range(4):
            h = _merge(h, v[k])
    else:
        h = (seed + P5) & M64
    h = (h + n) & M64
    while i + 8 <= n:
        h ^= _round(0, int.from_bytes(data[i:i + 8], "little"))
        h = (_rotl(h, 27) * P1 + P4) & M64
        i += 8
    if i + 4 <= n:
        h ^= (int.from_bytes(data[i:i + 4], "little") * P1) & M64
        h = (_rotl(h, 23) * P2 + P3) & M64
        i += 4
    while i < n:
        h ^= (data[i] * P5) & M64
        h = (_rotl(h, 11) * P1) & M64
        i += 1
    h ^= h >> 33
    h = (h * P2) & M64
    h ^= h >> 29
    h = (h * P3) & M64
    h ^= h >> 32
    return h


def aibrix_key(seed, parent, tokens):
    data = parent.to_bytes(8, "little") + b"".join(
        t.to_bytes(4, "big") for t in tokens)
    return xxh64(data, seed)


def aibrix_chain(seed, parent, tokens, bs):
    keys = []
    for b in range(len(tokens) // bs):
        parent = aibrix_key(seed, parent, tokens[b * bs:(b + 1) * bs])
        keys.append(parent)
    return keys


class RefIndex:
    """The model.  A pod is (name, rank); holders map (ns, key) to
    {pod: number of the pod's engine hashes mapped to that key} (two engine
    hashes of one pod can name the same content, e.g. after a cache salt);
    each pod maps engine hash -> [ns, key, media]."""

    def __init__(self, seed=0, default_model="-", degraded_orphans=100):
        self.seed = seed
        self.degraded_orphans = degraded_orphans  # 0: never
        self.default_model = default_model
        self.ns_bs = {}
        self.pods = {}       # pod -> {"map": {}, "degraded": bool}
        self.holders = {}    # (ns, key) -> set(pod)

    def _pod(self, ev):
        p = (ev.get("pod", "-"), ev.get("dp_rank"))
        return self.pods.setdefault(
            p, {"map": {}, "degraded": False, "orphans": 0}), p

    def _ns(self, ev):
        lora = ev.get("lora_name")
        if lora is None and ev.get("lora_id") is not None:
            lora = str(ev["lora_id"])
        return (ev.get("model", self.default_model), lora or "")

    def _drop(self, p, pod, h):
        ns, key, _media = pod["map"].pop(h)
        hs = self.holders[(ns, key)]
        hs[p] -= 1
        if not hs[p]:
            del hs[p]
        if not hs:
            del self.holders[(ns, key)]

    def _clear(self, p, pod):
        for h in list(pod["map"]):
            self._drop(p, pod, h)

    def apply(self, ev):
        t = ev["type"]
        pod, p = self._pod(ev)
        if t == "BlockStored":
            ns = self._ns(ev)
            bs = ev["block_size"]
            if ns in self.ns_bs and self.ns_bs[ns] != bs:
                return "block_size"
            hashes = [int(h) for h in ev["block_hashes"]]
            toks = ev["token_ids"]
            par = ev.get("parent_block_hash")
            # Checked in this order: block size, alignment, parent.
            if len(toks) != len(hashes) * bs:
                return "misaligned"
            if par is None:
                parent = self.seed
            elif int(par) in pod["map"]:
                parent = pod["map"][int(par)][1]
            else:
                pod["orphans"] += 1
                if self.degraded_orphans and \
                        pod["orphans"] > self.degraded_orphans:
                    pod["degraded"] = True
                return "orphan"
            self.ns_bs.setdefault(ns, bs)
            medium = ev.get("medium") or "GPU"
            for i, h in enumerate(hashes):
                key = aibrix_key(self.seed, parent, toks[i * bs:(i + 1) * bs])
                if h in pod["map"]:
                    pod["map"][h][2].add(medium)
                else:
                    pod["map"][h] = [ns, key, {medium}]
                    hs = self.holders.setdefault((ns, key), {})
                    hs[p] = hs.get(p, 0) + 1
                parent = key
        elif t == "BlockRemoved":
            medium = ev.get("medium")
            for h in (int(x) for x in ev["block_hashes"]):
                if h not in pod["map"]:
                    continue
                media = pod["map"][h][2]
                if medium:
                    media.discard(medium)
                else:
                    media.clear()
                if not media:
                    self._drop(p, pod, h)
        elif t in ("AllBlocksCleared", "restart"):
            self._clear(p, pod)
            pod["degraded"] = False
            pod["orphans"] = 0
        elif t == "gap":
            pod["degraded"] = True
        return None

    def match(self, model, lora, tokens, pods=None):
        """The answers, or None where kvindex must answer ok:false."""
        ns = (model, lora or "")
        if ns not in self.ns_bs:
            return None
        bs = self.ns_bs[ns]
        keys = aibrix_chain(self.seed, self.seed, tokens, bs)
        out = []
        for p, pod in self.pods.items():
            if pods is not None and p[0] not in pods:
                continue
            d = 0
            while d < len(keys) and p in self.holders.get((ns, keys[d]), ()):
                d += 1
            if d:
                out.append({"pod": p[0], "dp_rank": p[1], "depth": d,
                            "degraded": pod["degraded"],
                            "blocks": len(pod["map"])})
        # Deepest first; equal depths by the load proxy: fewest blocks held
        # (every namespace), then name, then rank (null first).
        out.sort(key=lambda m: (-m["depth"], m["blocks"], m["pod"],
                                -1 if m["dp_rank"] is None else m["dp_rank"]))
        for m in out:
            del m["blocks"]
        return out


def selftest():
    ok = True
    checks = [
        (xxh64(b""), 17241709254077376921),
        (aibrix_chain(0, 0, list(range(32)), 16),
         [13063670922251535405, 15794143472128267642]),
        (aibrix_chain(12345, 12345, list(range(32)), 16),
         [826599923864855889, 9446283537318736241]),
        (aibrix_chain(0, 0, list(range(1000, 1032)), 16),
         [1449979319522525991, 1153750677558858376]),
    ]
    for got, want in checks:
        if got != want:
            print("mismatch: got %r want %r" % (got, want))
            ok = False
    print("selftest", "ok" if ok else "FAILED")
    return 0 if ok else 1


class Gen:
    """A random but engine-like event stream: pods store chains of blocks
    of shared documents, remove some, get cleared, see gaps; plus a few
    orphans, misaligned stores, wrong block sizes and bad lines."""

    PODS = [("p0", 0), ("p1", 0), ("p2", 0), ("p2", 1), ("p3", None)]
    NS = [(None, 4), ("ad1", 4), ("ad2", 8)]  # (lora_name, block_size)

    def __init__(self, rnd):
        self.r = rnd
        self.seq = {p: 0 for p in self.PODS}
        # A small vocabulary (so that prefixes are shared) of token ids of
        # every length from 1 to 10 digits.
        self.vocab = [rnd.randrange(10 ** rnd.randrange(1, 10))
                      for _ in range(49)] + [4294967295]
        self.docs = [[rnd.choice(self.vocab)
                      for _ in range(rnd.randrange(8, 80))]
                     for _ in range(12)]
        # Per pod: engine hash -> (lora, token prefix tuple) and the reverse.
        self.held = {p: {} for p in self.PODS}
        self.by_prefix = {p: {} for p in self.PODS}
        self.next_hash = 1000

    def prompt(self):
        d = self.r.choice(self.docs)
        toks = d[:self.r.randrange(1, len(d) + 1)]
        if self.r.random() < 0.3:
            toks = toks + [self.r.choice(self.vocab)
                           for _ in range(self.r.randrange(1, 20))]
        return toks

    def env(self, p, t):
        self.seq[p] += 1
        e = {"pod": p[0], "dp_rank": p[1], "seq": self.seq[p], "ts": 1.5,
             "type": t}
        return e

    def store(self, p):
        lora, bs = self.r.choice(self.NS)
        toks = self.prompt()
        nb = len(toks) // bs
        if nb == 0:
            return None
        pref = self.by_prefix[p]
        k = 0
        parent = None
        while k < nb and (lora, tuple(toks[:(k + 1) * bs])) in pref:
            parent = pref[(lora, tuple(toks[:(k + 1) * bs]))]
            k += 1
        medium = "GPU"
        if k == nb:
            # Everything is held: re-store the last block on the CPU tier.
            if self.r.random() < 0.5 or nb == 0:
                return None
            k = nb - 1
            parent = pref.get((lora, tuple(toks[:k * bs]))) if k else None
            medium = "CPU"
        hashes = []
        for b in range(k, nb):
            key = (lora, tuple(toks[:(b + 1) * bs]))
            if key in pref:
                h = pref[key]
            else:
                self.next_hash += self.r.randrange(1, 1000)
                h = self.next_hash
                pref[key] = h
                self.held[p][h] = key
            hashes.append(h)
        e = self.env(p, "BlockStored")
        e.update({"block_hashes": [str(h) for h in hashes],
                  "parent_block_hash": None if parent is None else str(parent),
                  "token_ids": toks[k * bs:nb * bs], "block_size": bs,
                  "lora_id": None, "medium": medium, "lora_name": lora})
        return e

    def remove(self, p):
        if not self.held[p]:
            return None
        hs = self.r.sample(sorted(self.held[p]),
                           min(len(self.held[p]), self.r.randrange(1, 4)))
        medium = self.r.choice(["GPU", None, None, "CPU"])
        if medium != "CPU":
            for h in hs:
                key = self.held[p].pop(h)
                del self.by_prefix[p][key]
        # A CPU removal leaves the GPU copies (the generator's view stays).
        e = self.env(p, "BlockRemoved")
        e.update({"block_hashes": [str(h) for h in hs] + ["7"],
                  "medium": medium})
        return e

    def clear(self, p, t):
        self.held[p].clear()
        self.by_prefix[p].clear()
        e = self.env(p, t)
        if t == "restart":
            e["last_seq"] = self.seq[p] - 1
        return e

    def event(self):
        p = self.r.choice(self.PODS)
        x = self.r.random()
        if x < 0.60:
            return self.store(p)
        if x < 0.80:
            return self.remove(p)
        if x < 0.83:
            return self.clear(p, "AllBlocksCleared")
        if x < 0.85:
            return self.clear(p, "restart")
        if x < 0.88:
            e = self.env(p, "gap")
            e.update({"from": self.seq[p], "to": self.seq[p]})
            return e
        if x < 0.92:
            e = self.store(p)  # made into an orphan: unknown parent
            if e is not None:
                for h in e["block_hashes"]:
                    self.forget(p, int(h))
                e["parent_block_hash"] = "99999999999"
            return e
        if x < 0.96:
            e = self.store(p)  # made misaligned: one token short
            if e is not None and len(e["token_ids"]) > 1:
                for h in e["block_hashes"]:
                    self.forget(p, int(h))
                e["token_ids"] = e["token_ids"][:-1]
            return e
        if x < 0.98:
            e = self.store(p)  # wrong block size for the namespace
            if e is not None:
                for h in e["block_hashes"]:
                    self.forget(p, int(h))
                e["block_size"] = e["block_size"] * 2
                e["token_ids"] = e["token_ids"] * 2
            return e
        return "this is not json"

    def forget(self, p, h):
        key = self.held[p].pop(h, None)
        if key is not None:
            self.by_prefix[p].pop(key, None)


class Conn:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.f = self.s.makefile("rb")

    def call(self, req):
        self.s.sendall((json.dumps(req) + "\n").encode())
        line = self.f.readline()
        if not line:
            raise RuntimeError("server closed the connection")
        return json.loads(line)


def diff(kvindex, sockdir, seed, n_events, n_queries):
    rnd = random.Random(seed)
    gen = Gen(rnd)
    # A low threshold, so that the stream's orphans degrade some pods.
    ref = RefIndex(0, "m", degraded_orphans=2)
    path = os.path.join(sockdir, "diff-%d.sock" % seed)
    srv = subprocess.Popen([kvindex, "serve", "-q", "-s", path, "-m", "m",
                            "--degraded-orphans", "2"],
                           stdin=subprocess.PIPE)
    fails = 0
    compared = 0
    nonempty = 0
    deep = 0
    try:
        # The socket file appears at bind(), before listen(): a connect
        # in between is refused, so retry until the server answers.
        conn = None
        for _ in range(200):
            try:
                conn = Conn(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                time.sleep(0.02)
        if conn is None:
            conn = Conn(path)
        lines = 0
        # The first store of each namespace is a valid root store, so that
        # every namespace's block size is learnt from a good event.
        first = []
        for lora, bs in Gen.NS:
            toks = gen.docs[0][:bs]
            gen.next_hash += 1
            e = gen.env(("p0", 0), "BlockStored")
            e.update({"block_hashes": [str(gen.next_hash)],
                      "parent_block_hash": None, "token_ids": toks,
                      "block_size": bs, "lora_id": None, "medium": "GPU",
                      "lora_name": lora})
            gen.held[("p0", 0)][gen.next_hash] = (lora, tuple(toks))
            gen.by_prefix[("p0", 0)][(lora, tuple(toks))] = gen.next_hash
            first.append(e)
        phases = 5
        per = n_events // phases
        for ph in range(phases):
            batch = first if ph == 0 else []
            while len(batch) < per:
                e = gen.event()
                if e is not None:
                    batch.append(e)
            out = []
            for e in batch:
                if isinstance(e, str):
                    out.append(e)
                    continue
                ref.apply(e)
                out.append(json.dumps(e, separators=(",", ":")))
            srv.stdin.write(("\n".join(out) + "\n").encode())
            srv.stdin.flush()
            lines += len(out)
            for _ in range(500):
                st = conn.call({"op": "stats"})["data"]
                if st["lines"] >= lines:
                    break
                time.sleep(0.01)
            for q in range(n_queries // phases):
                lora, _bs = rnd.choice(Gen.NS)
                toks = gen.prompt()
                pods = None
                req = {"id": q, "op": "match", "model": "m",
                       "lora_name": lora, "tokens": toks}
                if rnd.random() < 0.2:
                    pods = sorted(rnd.sample(["p0", "p1", "p2", "p3"], 2))
                    req["pods"] = pods
                rep = conn.call(req)
                want = ref.match("m", lora, toks, pods)
                got = None
                if rep.get("ok"):
                    got = [{"pod": m["pod"], "dp_rank": m["dp_rank"],
                            "depth": m["depth"], "degraded": m["degraded"]}
                           for m in rep["data"]["matches"]]
                if q % 5 == 0 and (("m", lora or "")) in ref.ns_bs:
                    # The keys themselves: parsing of every token length
                    # and the aibrix chain, independently of the holders.
                    krep = conn.call({"op": "keys", "model": "m",
                                      "lora_name": lora, "tokens": toks})
                    kwant = [str(k) for k in aibrix_chain(
                        0, 0, toks, ref.ns_bs[("m", lora or "")])]
                    if krep.get("data", {}).get("keys") != kwant:
                        fails += 1
                        print("KEYS MISMATCH tokens=%r\n  kvindex: %s\n"
                              "  model:   %s" % (toks, json.dumps(krep),
                                                 json.dumps(kwant)))
                compared += 1
                nonempty += bool(want)
                deep = max([deep] + [m["depth"] for m in want or []])
                if rep.get("id") != q or got != want:
                    fails += 1
                    if fails <= 5:
                        print("MISMATCH phase %d lora=%r tokens=%r pods=%r\n"
                              "  kvindex: %s\n  model:   %s" %
                              (ph, lora, toks, pods, json.dumps(rep),
                               json.dumps(want)))
    finally:
        srv.terminate()
        srv.wait(10)
    print("seed %d: %d events, %d matches compared (%d with holders, "
          "deepest %d), %d mismatches" %
          (seed, n_events, compared, nonempty, deep, fails))
    if nonempty < compared // 4:
        print("too few non-empty answers: the test would prove little")
        return 1
    return 1 if fails else 0


def main(argv):
    if len(argv) >= 2 and argv[1] == "selftest":
        return selftest()
    if len(argv) >= 4 and argv[1] == "diff":
        opts = {"--seed": 1, "--events": 2000, "--queries": 300}
        rest = argv[4:]
        for i in range(0, len(rest) - 1, 2):
            opts[rest[i]] = int(rest[i + 1])
        return diff(argv[2], argv[3], opts["--seed"], opts["--events"],
                    opts["--queries"])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
