#!/usr/bin/python3
"""Writes a deterministic recorded stream of realistic vLLM batches.

    /usr/bin/python3 bench/gen_stream.py OUT [BATCHES]

Shape: current vLLM (array batch [ts, events, rank], tagged-map events, u64
hashes).  Each batch holds 1-8 events (4.5 on average): mostly BlockStored
of 1-8 blocks (small ones more likely) with 16-token blocks and a chained
parent, evictions of earlier blocks, and an occasional AllBlocksCleared,
which comes to about 1.1 KB per batch.  Output: for every batch a 4-byte
big-endian length, then the payload.  Prints the totals.
"""

import random
import struct
import sys

import msgpack

U64 = (1 << 64) - 1


def main():
    out = sys.argv[1]
    batches = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    rng = random.Random(20261128)
    ts = 1700000000.0
    live = []
    nbytes = nevents = 0
    with open(out, "wb") as f:
        for _ in range(batches):
            ts += rng.uniform(0.001, 0.05)
            events = []
            for _ in range(rng.randint(1, 8)):
                r = rng.random()
                if r < 0.005:
                    events.append({"type": "AllBlocksCleared"})
                    live.clear()
                elif r < 0.56 or not live:
                    n = min(rng.randint(1, 8), rng.randint(1, 8))
                    parent = rng.choice(live) if live and rng.random() < 0.7 \
                        else None
                    hashes = [rng.getrandbits(64) for _ in range(n)]
                    live.extend(hashes)
                    events.append({
                        "type": "BlockStored", "block_hashes": hashes,
                        "parent_block_hash": parent,
                        "token_ids": [rng.randrange(150000)
                                      for _ in range(16 * n)],
                        "block_size": 16, "lora_id": None, "medium": "GPU",
                        "lora_name": None, "extra_keys": [None] * n,
                        "group_idx": 0,
                        "kv_cache_spec_kind": "full_attention"})
                else:
                    h = live.pop(rng.randrange(len(live)))
                    events.append({"type": "BlockRemoved",
                                   "block_hashes": [h], "medium": "GPU",
                                   "group_idx": 0})
            payload = msgpack.packb([ts, events, 0])
            f.write(struct.pack(">I", len(payload)))
            f.write(payload)
            nbytes += len(payload)
            nevents += len(events)
    print("%d batches, %d events (%.2f per batch), %.0f bytes per batch"
          % (batches, nevents, nevents / batches, nbytes / batches))


if __name__ == "__main__":
    main()
