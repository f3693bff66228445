#!/usr/bin/python3
"""Inputs for bench/60-kvindex-socket.sh.

    kvindex_gen.py index OUT.ndjson REQS.jsonl   ~1M (pod, block) entries
        across 64 pods (2,048-token documents with shared 512-token system
        prompts, stored whole), and 256 match requests of 2,048 tokens.
    kvindex_gen.py ingest OUT.ndjson N            N engine-like events:
        one- and few-block BlockStored chains per pod, with removals.
"""
import random
import sys

BS = 16


def toks_json(t):
    return "[" + ",".join(map(str, t)) + "]"


def index(out, reqs):
    r = random.Random(1)
    systems = [[r.randrange(32000) for _ in range(512)] for _ in range(10)]
    docs = [systems[d % 10] + [r.randrange(32000) for _ in range(1536)]
            for d in range(500)]
    per_pod = 122  # 64 pods * 122 docs * 128 blocks = 999,424 entries
    with open(out, "w") as f:
        for p in range(64):
            h = p << 32
            for seq, d in enumerate(r.sample(range(len(docs)), per_pod)):
                hashes = ",".join('"%d"' % (h + i + 1) for i in range(128))
                h += 128
                f.write('{"pod":"pod-%02d","dp_rank":0,"seq":%d,"i":0,'
                        '"ts":1700000000.5,"type":"BlockStored",'
                        '"block_hashes":[%s],"parent_block_hash":null,'
                        '"token_ids":%s,"block_size":16,"lora_id":null,'
                        '"medium":"GPU"}\n' %
                        (p, seq, hashes, toks_json(docs[d])))
    with open(reqs, "w") as f:
        for i in range(256):
            t = list(docs[r.randrange(len(docs))])
            if i % 2:  # half of them diverge after a random block
                cut = r.randrange(BS, 2048)
                t[cut:] = [r.randrange(32000) for _ in range(2048 - cut)]
            f.write('{"id":%d,"op":"match","model":"m","tokens":%s}\n' %
                    (i, toks_json(t)))


def ingest(out, n):
    r = random.Random(2)
    pods = ["pod-%02d" % p for p in range(16)]
    last = {p: None for p in pods}
    held = {p: [] for p in pods}
    seq = {p: 0 for p in pods}
    h = 1
    with open(out, "w") as f:
        for _ in range(n):
            p = r.choice(pods)
            seq[p] += 1
            if held[p] and r.random() < 0.25:
                k = held[p].pop(r.randrange(len(held[p])))
                f.write('{"pod":"%s","dp_rank":0,"seq":%d,"i":0,'
                        '"ts":1700000001.25,"type":"BlockRemoved",'
                        '"block_hashes":["%d"],"medium":"GPU"}\n' %
                        (p, seq[p], k))
                continue
            nb = r.choice((1, 1, 1, 2, 4))
            hs = list(range(h, h + nb))
            h += nb
            parent = "null" if last[p] is None or r.random() < 0.05 \
                else '"%d"' % last[p]
            toks = [r.randrange(32000) for _ in range(nb * BS)]
            f.write('{"pod":"%s","dp_rank":0,"seq":%d,"i":0,'
                    '"ts":1700000001.25,"type":"BlockStored",'
                    '"block_hashes":[%s],"parent_block_hash":%s,'
                    '"token_ids":%s,"block_size":16,"lora_id":null,'
                    '"medium":"GPU","lora_name":null,"extra_keys":null,'
                    '"group_idx":0,"kv_cache_spec_kind":"full_attention"}\n' %
                    (p, seq[p], ",".join('"%d"' % x for x in hs), parent,
                     toks_json(toks)))
            last[p] = hs[-1]
            held[p].extend(hs)
            if len(held[p]) > 4000:
                held[p] = held[p][-4000:]


if __name__ == "__main__":
    if sys.argv[1] == "index":
        index(sys.argv[2], sys.argv[3])
    else:
        ingest(sys.argv[2], int(sys.argv[3]))
