#!/usr/bin/env bats
# Self-tests of the Python engine emulation (tests/peer/): it must speak
# the engines' protocol (docs/protocol.md#frames through
# docs/protocol.md#replay) on its own, checked here with pyzmq and msgpack
# only, never with kvtap's C code.

load helpers
bats_require_minimum_version 1.5.0

setup() {
    D=$BATS_TEST_TMPDIR
    PEER_PIDS=()
}

teardown() {
    for p in "${PEER_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
}

start_peer() {
    local name=$1
    shift
    rm -f "$D/$name.done"
    "$PY" "$PEER" --quiet --hold 60 --expect "$D/$name.expect" \
        --done "$D/$name.done" --ready "$D/$name.ready" "$@" &
    PEER_PIDS+=($!)
    wait_file "$D/$name.done" 20
}

# dealer URI START [RCVHWM SLEEP]: prints one line per reply message:
# "<nparts> <seq or END> <payload length>".
dealer() {
    "$PY" - "$@" <<'EOF'
import sys, time, zmq
uri, start = sys.argv[1], int(sys.argv[2])
hwm = int(sys.argv[3]) if len(sys.argv) > 3 else 1000000
pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0
ctx = zmq.Context()
d = ctx.socket(zmq.DEALER)
d.setsockopt(zmq.RCVHWM, hwm)
d.setsockopt(zmq.LINGER, 0)
d.connect(uri)
d.send_multipart([b"", start.to_bytes(8, "big")])
time.sleep(pause)
while d.poll(1500 if pause else 3000):
    f = d.recv_multipart()
    assert f[0] == b"", f
    s = f[-2]
    if s == b"\xff" * 8 and f[-1] == b"":
        print(len(f), "END", 0)
        break
    print(len(f), int.from_bytes(s, "big"), len(f[-1]))
EOF
}

@test "replay: [\"\", start] gets batches >= start, then the end marker" {
    port=$(free_port)
    start_peer p --replay "tcp://127.0.0.1:$port" --count 10
    run dealer "tcp://127.0.0.1:$port" 6
    assert_success
    assert_equal "${#lines[@]}" 5
    assert_line --index 0 --regexp '^3 6 [0-9]+$'
    assert_line --index 3 --regexp '^3 9 [0-9]+$'
    assert_line --index 4 "3 END 0"
}

@test "replay: --reply-topic answers [\"\", topic, seq, payload]" {
    port=$(free_port)
    start_peer p --replay "tcp://127.0.0.1:$port" --count 3 --topic kv \
        --reply-topic
    run dealer "tcp://127.0.0.1:$port" 0
    assert_success
    assert_line --index 0 --regexp '^4 0 [0-9]+$'
    assert_line --index 3 "4 END 0"
}

@test "replay: start newer than the newest seq gets only the end marker" {
    port=$(free_port)
    start_peer p --replay "tcp://127.0.0.1:$port" --count 3
    run dealer "tcp://127.0.0.1:$port" 99
    assert_success
    assert_output "3 END 0"
}

@test "replay: a request without the empty delimiter gets no reply" {
    port=$(free_port)
    start_peer p --replay "tcp://127.0.0.1:$port" --count 3
    run "$PY" -c '
import sys, zmq
d = zmq.Context().socket(zmq.DEALER)
d.setsockopt(zmq.LINGER, 0)
d.connect(sys.argv[1])
d.send((0).to_bytes(8, "big"))
print("reply" if d.poll(700) else "silence")' "tcp://127.0.0.1:$port"
    assert_output "silence"
}

@test "replay: the ring keeps the last --buffer batches; --forget is never kept" {
    port=$(free_port)
    start_peer p --replay "tcp://127.0.0.1:$port" --count 20 --buffer 5 \
        --forget 17
    run dealer "tcp://127.0.0.1:$port" 0
    assert_success
    run bash -c "echo '$output' | cut -d' ' -f2 | tr '\n' ' '"
    assert_output "14 15 16 18 19 END "
}

@test "replay: the ROUTER keeps HWM 1000, so a DEALER that falls behind loses replies" {
    port=$(free_port)
    start_peer p --replay "tcp://127.0.0.1:$port" --count 10000
    run dealer "tcp://127.0.0.1:$port" 0 10 2
    assert_success
    n=$(printf '%s\n' "$output" | grep -vc END)
    echo "received $n of 10000"
    [ "$n" -lt 10000 ]
}

@test "live: [topic, seq8, payload]; withheld seqs are replay-only" {
    pub=$(free_port)
    rep=$(free_port)
    "$PY" "$PEER" --quiet --pub "tcp://127.0.0.1:$pub" \
        --replay "tcp://127.0.0.1:$rep" --count 6 --topic kv --withhold 2,3 \
        --wait-subs 1 --hold 30 --done "$D/done" &
    PEER_PIDS+=($!)
    run "$PY" -c '
import sys, zmq
s = zmq.Context().socket(zmq.SUB)
s.setsockopt(zmq.SUBSCRIBE, b"")
s.setsockopt(zmq.LINGER, 0)
s.connect(sys.argv[1])
got = []
while s.poll(3000):
    f = s.recv_multipart()
    assert len(f) == 3 and f[0] == b"kv" and len(f[1]) == 8, f
    got.append(int.from_bytes(f[1], "big"))
    if got[-1] == 5:
        break
print(got)' "tcp://127.0.0.1:$pub"
    assert_success
    assert_output "[0, 1, 4, 5]"
    wait_file "$D/done" 10
    run dealer "tcp://127.0.0.1:$rep" 2
    assert_line --index 0 --regexp '^3 2 '
    assert_line --index 1 --regexp '^3 3 '
}

@test "payloads follow each layout's msgspec shape (python msgpack)" {
    for layout in vllm vllm-array vllm-map-batch sglang v090 sglang-array; do
        port=$(free_port)
        start_peer "$layout" --replay "tcp://127.0.0.1:$port" --count 60 \
            --layout "$layout" --rank 1
        run "$PY" - "tcp://127.0.0.1:$port" "$layout" <<'EOF'
import sys, zmq, msgpack
uri, layout = sys.argv[1], sys.argv[2]
d = zmq.Context().socket(zmq.DEALER)
d.setsockopt(zmq.LINGER, 0)
d.connect(uri)
d.send_multipart([b"", (0).to_bytes(8, "big")])
seen = set()
while d.poll(3000):
    f = d.recv_multipart()
    if f[-2] == b"\xff" * 8:
        break
    b = msgpack.unpackb(f[-1], raw=False, strict_map_key=False)
    if layout == "vllm-map-batch":
        assert isinstance(b, dict) and list(b) == ["ts", "events", "data_parallel_rank"], b
        ts, evs, rank = b["ts"], b["events"], b["data_parallel_rank"]
    elif layout == "v090":
        assert isinstance(b, list) and len(b) == 2, b
        ts, evs, rank = b[0], b[1], None
    else:
        assert isinstance(b, list) and len(b) == 3, b
        ts, evs, rank = b
        assert rank == 1, b
    assert isinstance(ts, float), ts
    # msgspec writes Python floats as float64 (0xcb) right after the header.
    assert b"\xcb" in f[-1][:16]
    for e in evs:
        if layout in ("vllm", "vllm-map-batch", "sglang"):
            assert isinstance(e, dict) and list(e)[0] == "type", e
            t = e["type"]
            keys = list(e)[1:]
            if t == "BlockStored":
                req = ["block_hashes", "parent_block_hash", "token_ids",
                       "block_size", "lora_id"]
                req += ["medium", "lora_name"] if layout != "sglang" else []
                assert keys[:len(req)] == req, keys
                assert None not in [e[k] for k in keys[len(req):]], e
            elif t == "BlockRemoved":
                assert keys[0] == "block_hashes", keys
                if layout != "sglang":
                    assert keys[1] == "medium", keys
        else:
            assert isinstance(e, list) and isinstance(e[0], str), e
            t = e[0]
            want = {"vllm-array": {"BlockStored": 12, "BlockRemoved": 4},
                    "v090": {"BlockStored": 6, "BlockRemoved": 2},
                    "sglang-array": {"BlockStored": (7, 8, 9),
                                     "BlockRemoved": 3}}[layout]
            if t in want:
                w = want[t]
                assert len(e) in (w if isinstance(w, tuple) else (w,)), e
            else:
                assert t == "AllBlocksCleared" and len(e) == 1, e
        seen.add(t)
print(sorted(seen))
EOF
        assert_success
        assert_output --partial "BlockRemoved"
        assert_output --partial "BlockStored"
    done
}

@test "hashes: about half >= 2^63 (vllm), negative ints for sglang" {
    port=$(free_port)
    start_peer v --replay "tcp://127.0.0.1:$port" --count 200
    run "$PY" -c '
import json, sys
hs = []
for ln in open(sys.argv[1]):
    o = json.loads(ln)
    hs += [int(h) for h in o.get("block_hashes") or []]
big = sum(h >= 2**63 for h in hs)
assert 0.3 < big / len(hs) < 0.7, (big, len(hs))
assert all(0 <= h < 2**64 for h in hs)' "$D/v.expect"
    assert_success
}

@test "layouts.py renders ndjson.md's example lines byte for byte" {
    run "$PY" - "$KVTAP_TOP/tests/peer" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import layouts
ev = {"type": "BlockStored", "block_hashes": [15760518052499183552],
      "parent_block_hash": None, "token_ids": list(range(1, 17)),
      "block_size": 16, "lora_id": None, "medium": "GPU", "lora_name": None,
      "extra_keys": [None], "group_idx": 0,
      "kv_cache_spec_kind": "full_attention"}
got = layouts.expected_ndjson("pod-a", 41, 1700000000.25, 0, [ev])
want = ('{"pod":"pod-a","dp_rank":0,"seq":41,"i":0,"ts":1700000000.25,'
        '"type":"BlockStored","block_hashes":["15760518052499183552"],'
        '"parent_block_hash":null,"token_ids":[1,2,3,4,5,6,7,8,9,10,11,12,'
        '13,14,15,16],"block_size":16,"lora_id":null,"medium":"GPU",'
        '"lora_name":null,"extra_keys":[null],"group_idx":0,'
        '"kv_cache_spec_kind":"full_attention"}')
assert got == [want], got
rm = {"type": "BlockRemoved", "block_hashes": [15760518052499183552],
      "medium": "GPU"}
got = layouts.expected_ndjson("pod-a", 42, 1700000000.5, 0, [rm])
assert got == ['{"pod":"pod-a","dp_rank":0,"seq":42,"i":0,"ts":1700000000.5,'
               '"type":"BlockRemoved","block_hashes":["15760518052499183552"],'
               '"medium":"GPU"}'], got
got = layouts.expected_ndjson("pod-a", 43, 1700000001.0, 0,
                              [{"type": "AllBlocksCleared"}])
assert got == ['{"pod":"pod-a","dp_rank":0,"seq":43,"i":0,"ts":1700000001,'
               '"type":"AllBlocksCleared"}'], got
# Canonical hashes: two's complement of ints, last 8 bytes of digests.
assert layouts.canonical_hash(-5) == 18446744073709551611
d = bytes(range(32))
assert layouts.canonical_hash(d) == int.from_bytes(d[-8:], "big")
# The legacy array writes every slot: nil ones appear as null.
arr = layouts.expected_ndjson("p", 1, 1.5, None, [rm], layout="vllm-array")
assert arr[0].endswith('"medium":"GPU","group_idx":null}'), arr
# docs/protocol.md#batches: the AllBlocksCleared batch bytes.
b = layouts.encode_batch(1700000000.0, [{"type": "AllBlocksCleared"}], 0,
                         "vllm-array")
assert b == bytes.fromhex("93cb41d954fc40000000" "9191b0") + \
    b"AllBlocksCleared" + b"\x00", b.hex()
b = layouts.encode_batch(1700000000.0, [{"type": "AllBlocksCleared"}], 0)
assert b == bytes.fromhex("93cb41d954fc40000000" "9181a4") + b"type" + \
    b"\xb0AllBlocksCleared" + b"\x00", b.hex()
print("ok")
EOF
    assert_success
    assert_output "ok"
}

@test "--restart-after: the sequence starts again at 0 and the ring is emptied" {
    port=$(free_port)
    start_peer p --replay "tcp://127.0.0.1:$port" --count 8 --restart-after 5
    run dealer "tcp://127.0.0.1:$port" 0
    assert_success
    run bash -c "echo '$output' | cut -d' ' -f2 | tr '\n' ' '"
    assert_output "0 1 2 END "
    run grep -c '"type":"restart"' "$D/p.expect"
    assert_output "1"
}

@test "--input publishes an NDJSON file's events: its --expect is the file" {
    for layout in vllm sglang vllm-array; do
        "$PY" "$PEER" --quiet --hold 0 --count 120 --layout "$layout" \
            --expect "$D/a.$layout"
        "$PY" "$PEER" --quiet --hold 0 --input "$D/a.$layout" \
            --layout "$layout" --expect "$D/b.$layout"
        [ -s "$D/a.$layout" ]
        cmp "$D/a.$layout" "$D/b.$layout"
    done
}
