#!/usr/bin/python3
"""Golden payloads of the producers other than vLLM and SGLang
(docs/protocol.md#producers), and the NDJSON kvtap must print for each.

Each case's payload is built here with python3-msgpack from the layout the
producer's source declares (the issue that asked for it cites file and
commit); the expected lines are written out by hand below, from
docs/ndjson.md's rules, never produced by running kvtap.  `main` writes
tests/data/fixtures/NAME.bin, NAME.ndjson and, when the case needs decoder
options, NAME.opts; tests/unit/test_golden.c decodes every fixture and
tests/cli/producers.bats publishes each payload live (peer.py --payload).

Envelope of every line: pod "golden", no model, seq 7.

Run: /usr/bin/python3 tests/peer/producers.py
"""

import os
import sys

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "data", "fixtures")
TS = 1700000000.0

CASES = []


def case(name, payload, lines, opts=None, kvpub=None):
    """A fixture: payload bytes, expected lines, decoder options, and the
    kvpub --layout that re-encodes the lines into the same bytes (None when
    kvpub has no such layout)."""
    CASES.append({"name": name, "payload": payload, "lines": lines,
                  "opts": opts or {}, "kvpub": kvpub})


def pk(obj):
    return msgpack.packb(obj, use_bin_type=True)


def trtllm():
    """TensorRT-LLM (kv_cache_events.py): vLLM's tagged maps, signed
    hashes, token ids that may be placeholder strings, and mm_keys: one
    list per block hash of {"type": "mm_key", "hash": hex, "start_offset":
    int, "uuid"?: str}."""
    store = {"type": "BlockStored", "block_hashes": [-5, 77],
             "parent_block_hash": -9, "token_ids": [1, 2, "<img>", 4, 5,
                                                    "<img>", "<aud>", 8],
             "block_size": 4, "lora_id": None, "medium": "GPU",
             "lora_name": None,
             "mm_keys": [[{"type": "mm_key", "hash": "9f86d081884c7d65",
                           "start_offset": 2, "uuid": "img-1"}],
                         [{"type": "mm_key", "hash": "60303ae22b998861",
                           "start_offset": 1},
                          {"type": "mm_key", "hash": "fd61a03af4f77d87",
                           "start_offset": 2}]]}
    removed = {"type": "BlockRemoved", "block_hashes": [77],
               "medium": "GPU"}
    case("P01_trtllm", pk([TS, [store, removed], 0]), [
        '{"pod":"golden","dp_rank":0,"seq":7,"i":0,"ts":1700000000,'
        '"type":"BlockStored","block_hashes":["18446744073709551611","77"],'
        '"parent_block_hash":"18446744073709551607",'
        '"token_ids":[1,2,"<img>",4,5,"<img>","<aud>",8],"block_size":4,'
        '"lora_id":null,"medium":"GPU","lora_name":null,"mm_keys":'
        '[[{"type":"mm_key","hash":"9f86d081884c7d65","start_offset":2,'
        '"uuid":"img-1"}],[{"type":"mm_key","hash":"60303ae22b998861",'
        '"start_offset":1},{"type":"mm_key","hash":"fd61a03af4f77d87",'
        '"start_offset":2}]]}',
        '{"pod":"golden","dp_rank":0,"seq":7,"i":1,"ts":1700000000,'
        '"type":"BlockRemoved","block_hashes":["77"],"medium":"GPU"}',
    ], kvpub="trtllm")


def build():
    trtllm()


def main():
    build()
    for c in CASES:
        base = os.path.join(OUT, c["name"])
        with open(base + ".bin", "wb") as f:
            f.write(c["payload"])
        with open(base + ".ndjson", "w", encoding="utf-8",
                  newline="\n") as f:
            f.write("".join(ln + "\n" for ln in c["lines"]))
        if c["opts"]:
            with open(base + ".opts", "w") as f:
                for k, v in c["opts"].items():
                    f.write("%s=%s\n" % (k, v))
        elif os.path.exists(base + ".opts"):
            os.remove(base + ".opts")
    # The list producers.bats walks: name and kvpub layout ("-": none).
    with open(os.path.join(OUT, "producers.list"), "w") as f:
        for c in CASES:
            f.write("%s %s\n" % (c["name"], c["kvpub"] or "-"))
    print("wrote %d producer fixtures to %s" % (len(CASES), OUT))


if __name__ == "__main__":
    sys.exit(main())
