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


def mooncake_map(event_id, event_type, block_size, key, tokens=True,
                 legacy=True):
    """One event map of Mooncake's master (kvcache-ai/Mooncake #2214,
    RFC #1527), keys in the publisher's order."""
    legacy_tag = {"stored": "BlockStored", "removed": "BlockRemoved",
                  "cleared": "AllBlocksCleared"}[event_type]
    m = {"event_id": event_id, "timestamp": 1700000000100 + event_id,
         "event_type": event_type}
    if legacy:
        m["type"] = legacy_tag
    m.update({"model_name": "deepseek", "block_size": block_size,
              "additional_salt": None, "lora_name": None,
              "tenant_id": "default", "backend_id": "node-1",
              "medium": "cpu", "dp_rank": 0})
    if event_type != "cleared":
        m.update({"group_id": 0, "object_key": key, "seq_hashes": [],
                  "block_hashes": [], "base_block_idx": None})
    if event_type == "stored" and tokens:
        m.update({"parent_hash": None, "token_ids": None,
                  "parent_block_hash": None})
    return m


def mooncake():
    """Mooncake's master: [ts_ms, [map...], dp_rank]; the block identity is
    object_key (a rolling seq hash as a string); token ids and parents are
    nil; a map may lack the legacy "type" (event_type says it)."""
    evs = [mooncake_map(1, "stored", 64, "12345678901234567890"),
           mooncake_map(2, "removed", None, "0x5f3e9a1c2b7d4e60"),
           mooncake_map(3, "removed", 64, "12345678901234567890",
                        legacy=False),
           mooncake_map(4, "cleared", 64, None)]
    env = '{"pod":"golden","dp_rank":0,"seq":7,"i":%d,"ts":1700000000.123,'
    removed = ('"event_type":"removed","model_name":"deepseek",'
               '"block_size":%s,"additional_salt":null,"lora_name":null,'
               '"tenant_id":"default","backend_id":"node-1","dp_rank":0,'
               '"group_id":0,"seq_hashes":[],"base_block_idx":null}')
    case("P02_mooncake", pk([1700000000123, evs, 0]), [
        (env % 0) + '"type":"BlockStored","block_hashes":[],'
        '"parent_block_hash":null,"token_ids":null,"block_size":64,'
        '"lora_id":null,"medium":"cpu","lora_name":null,'
        '"object_key":"12345678901234567890","event_id":1,'
        '"timestamp":1700000000101,"event_type":"stored",'
        '"model_name":"deepseek","additional_salt":null,'
        '"tenant_id":"default","backend_id":"node-1","dp_rank":0,'
        '"group_id":0,"seq_hashes":[],"base_block_idx":null,'
        '"parent_hash":null}',
        (env % 1) + '"type":"BlockRemoved","block_hashes":[],'
        '"medium":"cpu","object_key":"0x5f3e9a1c2b7d4e60","event_id":2,'
        '"timestamp":1700000000102,' + (removed % "null"),
        (env % 2) + '"type":"BlockRemoved","block_hashes":[],'
        '"medium":"cpu","object_key":"12345678901234567890","event_id":3,'
        '"timestamp":1700000000103,' + (removed % "64"),
        (env % 3) + '"type":"AllBlocksCleared","medium":"cpu","event_id":4,'
        '"timestamp":1700000000104,"event_type":"cleared",'
        '"model_name":"deepseek","block_size":64,"additional_salt":null,'
        '"lora_name":null,"tenant_id":"default","backend_id":"node-1",'
        '"dp_rank":0}',
    ])


def llmd_fs():
    """llm-d's storage-tier publisher (llm-d-kv-cache event_publisher.py):
    [ts, [bin, ...]] without a rank, each bin one packed array event;
    parent 0 means no parent, tokens and block size are not known."""
    h1, h2 = (1 << 63) + 5, 42
    stored = pk(["BlockStored", [h1, h2], 0, [], 0, None,
                 "SHARED_STORAGE"])
    stored2 = pk(["BlockStored", [7], 0, [], 0, None, "OBJECT_STORE"])
    removed = pk(["BlockRemoved", [h2], "SHARED_STORAGE"])
    env = '{"pod":"golden","dp_rank":null,"seq":7,"i":%d,"ts":1700000000.5,'
    case("P03_llmd_fs", pk([1700000000.5, [stored, stored2, removed]]), [
        (env % 0) + '"type":"BlockStored","block_hashes":'
        '["9223372036854775813","42"],"parent_block_hash":null,'
        '"token_ids":[],"block_size":0,"lora_id":null,'
        '"medium":"SHARED_STORAGE"}',
        (env % 1) + '"type":"BlockStored","block_hashes":["7"],'
        '"parent_block_hash":null,"token_ids":[],"block_size":0,'
        '"lora_id":null,"medium":"OBJECT_STORE"}',
        (env % 2) + '"type":"BlockRemoved","block_hashes":["42"],'
        '"medium":"SHARED_STORAGE"}',
    ], kvpub="llmd-fs")


def sglang_meta():
    """SGLang's array events with the metadata map of #37482 at index 7:
    {"cache_salt"?: str, "session_id"?: str}, unset keys left out."""
    h = -6573382371980181291
    base = ["BlockStored", [h], None, [1, 2, 3, 4], 4, None, "GPU"]
    evs = [base + [{"cache_salt": "tenant-a", "session_id": "req-1"}],
           base + [{"session_id": "req-2"}],
           base + [{}]]
    head = ('{"pod":"golden","dp_rank":0,"seq":7,"i":%d,"ts":1700000000,'
            '"type":"BlockStored","block_hashes":["11873361701729370325"],'
            '"parent_block_hash":null,"token_ids":[1,2,3,4],"block_size":4,'
            '"lora_id":null,"medium":"GPU"')
    case("P04_sglang_meta", pk([TS, evs, 0]), [
        (head % 0) + ',"cache_salt":"tenant-a","session_id":"req-1"}',
        (head % 1) + ',"session_id":"req-2"}',
        (head % 2) + '}',
    ], opts={"engine": "auto"})


def atom():
    """ROCm ATOM (atom/.../kv_events.py): vLLM's 12 array slots plus
    token_offset at 12; AllBlocksCleared may name a medium; and
    BlockTransferred [tag, hashes, from_medium, to_medium, group_idx]."""
    store = ["BlockStored", [11, 12], None, list(range(1, 9)), 4, None,
             "GPU", None, None, 0, "full_attention", None, 0]
    moved = ["BlockTransferred", [11], "GPU", "CPU", 0]
    cleared = ["AllBlocksCleared", "CPU"]
    env = '{"pod":"golden","dp_rank":0,"seq":7,"i":%d,"ts":1700000000,'
    case("P05_atom", pk([TS, [store, moved, cleared], 0]), [
        (env % 0) + '"type":"BlockStored","block_hashes":["11","12"],'
        '"parent_block_hash":null,"token_ids":[1,2,3,4,5,6,7,8],'
        '"block_size":4,"lora_id":null,"medium":"GPU","lora_name":null,'
        '"extra_keys":null,"group_idx":0,'
        '"kv_cache_spec_kind":"full_attention",'
        '"kv_cache_spec_sliding_window":null,"token_offset":0}',
        (env % 1) + '"type":"BlockTransferred","block_hashes":["11"],'
        '"group_idx":0,"from_medium":"GPU","to_medium":"CPU"}',
        (env % 2) + '"type":"AllBlocksCleared","medium":"CPU"}',
    ], kvpub="atom")


def vllm_named():
    """vLLM's fields from merged and open PRs, under their own names:
    locality, ownership, session_id (#48281, #52067, #51381),
    remaining_copy_counts (#48933), origin (#51699), skipped_* (#44488,
    skipped_parent_block_hash a hash: a decimal string), BlockInactive
    (#50732); and LMCache's CPU stores through vLLM's path (#5076)."""
    big = (1 << 63) + 9
    store = {"type": "BlockStored", "block_hashes": [big],
             "parent_block_hash": None, "token_ids": [1, 2], "block_size": 2,
             "lora_id": None, "medium": "CPU", "lora_name": None,
             "group_idx": 0, "locality": "LOCAL", "ownership": "kvcr",
             "session_id": "s-1", "remaining_copy_counts": [2, 0],
             "origin": "lmcache", "skipped_parent_block_hash": big + 1,
             "skipped_token_ids": [7, 8], "skipped_extra_keys": [None]}
    gpu = {"type": "BlockStored", "block_hashes": [big],
           "parent_block_hash": None, "token_ids": [1, 2], "block_size": 2,
           "lora_id": None, "medium": "GPU", "lora_name": None}
    inactive = {"type": "BlockInactive", "block_hashes": [big],
                "medium": "GPU", "group_idx": 0}
    removed = {"type": "BlockRemoved", "block_hashes": [big],
               "medium": "CPU", "remaining_copy_counts": [1, 0]}
    env = '{"pod":"golden","dp_rank":0,"seq":7,"i":%d,"ts":1700000000,'
    case("P06_vllm_named", pk([TS, [store, gpu, inactive, removed], 0]), [
        (env % 0) + '"type":"BlockStored","block_hashes":'
        '["9223372036854775817"],"parent_block_hash":null,'
        '"token_ids":[1,2],"block_size":2,"lora_id":null,"medium":"CPU",'
        '"lora_name":null,"group_idx":0,"locality":"LOCAL",'
        '"ownership":"kvcr","session_id":"s-1",'
        '"remaining_copy_counts":[2,0],"origin":"lmcache",'
        '"skipped_parent_block_hash":"9223372036854775818",'
        '"skipped_token_ids":[7,8],"skipped_extra_keys":[null]}',
        (env % 1) + '"type":"BlockStored","block_hashes":'
        '["9223372036854775817"],"parent_block_hash":null,'
        '"token_ids":[1,2],"block_size":2,"lora_id":null,"medium":"GPU",'
        '"lora_name":null}',
        (env % 2) + '"type":"BlockInactive","block_hashes":'
        '["9223372036854775817"],"medium":"GPU","group_idx":0}',
        (env % 3) + '"type":"BlockRemoved","block_hashes":'
        '["9223372036854775817"],"medium":"CPU",'
        '"remaining_copy_counts":[1,0]}',
    ], kvpub="vllm")


def build():
    trtllm()
    mooncake()
    llmd_fs()
    sglang_meta()
    atom()
    vllm_named()


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
