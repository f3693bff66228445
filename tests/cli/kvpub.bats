#!/usr/bin/env bats
# kvpub against an independent subscriber, replay client and checker written
# in Python (tests/peer/kvpub_check.py: pyzmq, python msgpack and the engine
# layouts of tests/peer/layouts.py), over real sockets on 127.0.0.1.  kvpub
# waits for the subscriber (--wait-subs) so nothing is lost to the slow
# joiner; every background process is killed in teardown.

load helpers

CHECK="$KVTAP_TOP/tests/peer/kvpub_check.py"
SAMPLE="$KVTAP_TOP/tests/data/sample.ndjson"

setup() {
    T=$BATS_TEST_TMPDIR
    PIDS=()
    P=tcp://127.0.0.1:$(free_port)
    R=tcp://127.0.0.1:$(free_port)
}

teardown() {
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
}

# Starts kvpub in the background: start_kvpub ARGS... (stdin from $IN).
start_kvpub() {
    kvpub "$@" <"${IN:-/dev/null}" >"$T/kvpub.out" 2>"$T/kvpub.err" &
    KVPUB=$!
    PIDS+=($KVPUB)
}

# Waits for kvpub to end; sets ST to its exit status (124: still running).
# kvpub writes nothing on stdout.  Not under `run`: a subshell cannot wait
# for its parent's children.
kvpub_status() {
    ST=0
    wait_pid "$KVPUB" 10 || ST=$?
    if [ -s "$T/kvpub.out" ]; then
        echo "kvpub wrote on stdout:"
        cat "$T/kvpub.out"
        return 1
    fi
}

# Receives N messages on $P into $T/got.jsonl.
subscribe() {
    "$PY" "$CHECK" sub "$P" --count "$1" --timeout 10 >"$T/got.jsonl" || {
        echo "got $(wc -l <"$T/got.jsonl") of $1; kvpub said:"
        cat "$T/kvpub.err"
        return 1
    }
}

# The number of batches of pod $1 in the sample.
batches_of() {
    "$PY" "$CHECK" expect "$SAMPLE" --pod "$1" | wc -l
}

# Publishes input $1 (pod $2) in layout $3 and checks the payloads: decoded
# independently they carry the input events, and they equal, byte for
# byte, what msgspec produces for the same events (layouts.py).
check_layout() {
    local in=$1 pod=$2 layout=$3
    shift 3
    local n
    n=$("$PY" "$CHECK" expect "$in" --pod "$pod" --layout "$layout" "$@" | wc -l)
    [ "$n" -gt 5 ]
    IN=$in start_kvpub --wait-subs 1 --pod "$pod" --layout "$layout" "$@" "$P"
    subscribe "$n"
    run "$PY" "$CHECK" decode "$in" --pod "$pod" --layout "$layout" "$@" <"$T/got.jsonl"
    assert_success
    "$PY" "$CHECK" expect "$in" --pod "$pod" --layout "$layout" "$@" >"$T/want.jsonl"
    run diff <(jq -c '[.seq, .payload]' "$T/got.jsonl") <(jq -c '[.seq, .payload]' "$T/want.jsonl")
    assert_success
    kvpub_status
    assert_equal "$ST" 0
}

@test "--help has OUTPUT, EXIT STATUS and EXAMPLES and exits 0" {
    run kvpub --help
    assert_success
    assert_output --partial "Usage: kvpub"
    assert_output --partial "OUTPUT"
    assert_output --partial "EXIT STATUS"
    assert_output --partial "EXAMPLES"
    run kvpub -V
    assert_success
    assert_output --partial "kvpub"
    assert_output --partial "libzmq"
}

@test "bad flags and arguments exit 2 with a hint" {
    for args in "--bogus $P" "--layout nope $P" "--rate fast $P" \
        "--buffer 0 $P" "--wait-subs -1 $P" "--delay soon $P" \
        "--synth 0 $P" "--replay-hwm x $P" "" "not-a-uri" "$P $R $P" \
        "--synth 5 --pod a $P" "--layout"; do
        # shellcheck disable=SC2086
        run kvpub $args
        assert_equal "$status" 2
        assert_output --partial "Try 'kvpub --help'."
    done
}

@test "layout vllm: payloads decode to the input and equal msgspec's bytes" {
    check_layout "$SAMPLE" pod-a vllm
}

# extra_keys, unknown keys and "@N" slots are read as JSON text (blanks
# inside kept) and converted only here, when kvpub encodes them: the bytes
# must still be msgspec's for the values Python reads from the same lines.
generic_input() {
    local f=$1 key=$2 seq
    : >"$f"
    for seq in 0 1 2 3 4 5; do
        printf '%s\n' "{\"pod\":\"pod-x\",\"dp_rank\":0,\"seq\":$seq,\"ts\":1700000000.5,\"type\":\"BlockStored\",\"block_hashes\":[\"1$seq\",\"2$seq\"],\"parent_block_hash\":null,\"token_ids\":[1,2,3,4],\"block_size\":2,\"lora_id\":null,\"medium\":\"GPU\",\"lora_name\":\"adapter\",\"extra_keys\": [ [\"adapter\", [\"mm\", -4], \"s\\u00e9\", 1.5, true, null, 128, -33, 65536, 4294967296, -2147483649, {\"k\": {}}], null ] ,\"group_idx\":0,\"kv_cache_spec_kind\":\"full_attention\",\"$key\":{\"nested\":[1,\"é\",-0.25,18446744073709551615]}}" >>"$f"
    done
}

@test "layout vllm: generic values kept as JSON text encode as msgspec would" {
    generic_input "$T/generic.ndjson" future
    check_layout "$T/generic.ndjson" pod-x vllm
}

# An array has no place for a named unknown key: extra_keys alone here.
@test "layout vllm-array: generic values in array slots encode as msgspec would" {
    generic_input "$T/all.ndjson" future
    sed 's/,"future":.*}$/}/' "$T/all.ndjson" >"$T/generic.ndjson"
    run grep -c '"extra_keys": \[ \["adapter".*"group_idx":0,"kv_cache_spec_kind":"full_attention"}$' "$T/generic.ndjson"
    assert_output 6
    check_layout "$T/generic.ndjson" pod-x vllm-array
}

@test "layout vllm-array: 12/4-slot arrays equal msgspec's bytes" {
    check_layout "$SAMPLE" pod-b vllm-array
}

@test "layout vllm-map-batch: map batch equals msgspec's bytes" {
    check_layout "$SAMPLE" pod-a vllm-map-batch
}

@test "layout sglang: SGLang maps, signed hashes, equal msgspec's bytes" {
    # SGLang's events have no lora_name/extra_keys/group_idx/spec kind.
    jq -c 'del(.lora_name, .extra_keys, .group_idx, .kv_cache_spec_kind)
           | if .type == "BlockStored" and .seq % 3 == 1
             then . + {cache_salt: "salt-\(.seq)"} else . end' \
        "$SAMPLE" >"$T/sglang.ndjson"
    check_layout "$T/sglang.ndjson" pod-b sglang
    # A vLLM capture re-played as SGLang: fields SGLang lacks are dropped.
    check_layout "$SAMPLE" pod-a sglang
}

@test "--bytes-hashes publishes the 32-byte digests of block_digests" {
    "$PY" - "$SAMPLE" >"$T/digests.ndjson" <<'EOF'
import hashlib, json, sys
for raw in open(sys.argv[1]):
    o = json.loads(raw)
    def dig(h):
        v = int(h)
        return (hashlib.sha256(b"%d" % v).digest()[:24] + v.to_bytes(8, "big")).hex()
    if o.get("block_hashes"):
        o["block_digests"] = [dig(h) for h in o["block_hashes"]]
    if o.get("parent_block_hash"):
        o["parent_block_digest"] = dig(o["parent_block_hash"])
    print(json.dumps(o, separators=(",", ":")))
EOF
    check_layout "$T/digests.ndjson" pod-a vllm --bytes-hashes
    grep -q c420 "$T/got.jsonl"
}

@test "seq counts from 0 per batch, ts and dp_rank come from the lines" {
    cat >"$T/in.ndjson" <<'EOF'
{"pod":"x","dp_rank":3,"seq":40,"i":0,"ts":1700000000.25,"type":"AllBlocksCleared"}
{"pod":"x","dp_rank":3,"seq":40,"i":1,"ts":1700000000.25,"type":"BlockRemoved","block_hashes":["18446744073709551615"],"medium":"GPU"}
{"pod":"x","dp_rank":3,"seq":41,"i":0,"ts":1700000001,"type":"BlockRemoved","block_hashes":["7"],"medium":null}
{"pod":"x","dp_rank":null,"seq":41,"type":"gap","from":1,"to":2}
{"type":"AllBlocksCleared"}
{"type":"AllBlocksCleared"}
EOF
    IN=$T/in.ndjson start_kvpub --wait-subs 1 "$P"
    subscribe 4
    run jq -c '[.seq, .topic, .frames]' "$T/got.jsonl"
    assert_output $'[0,"",3]\n[1,"",3]\n[2,"",3]\n[3,"",3]'
    run "$PY" -c '
import json, sys, msgpack
for l in open(sys.argv[1]):
    ts, ev, rank = msgpack.unpackb(bytes.fromhex(json.loads(l)["payload"]))
    print(type(ts).__name__, len(ev), rank)' "$T/got.jsonl"
    assert_line --index 0 "float 2 3"
    assert_line --index 1 "float 1 3"
    assert_line --index 2 "float 1 None"
    assert_line --index 3 "float 1 None"
}

@test "a full round trip NDJSON -> kvpub -> kvsub -> NDJSON equals the input" {
    IN=$SAMPLE start_kvpub --wait-subs 1 --pod pod-b "$P" "$R"
    n=$(grep -c '"pod":"pod-b"' "$SAMPLE")
    run_ndjson "$T/out.ndjson" kvsub -c "$n" --idle 5s "pod-b=$P,$R"
    assert_success
    # The sample's pod-b batches are numbered from 0 like kvpub's, so even
    # the envelope is the same.
    diff <(grep '"pod":"pod-b"' "$SAMPLE") "$T/out.ndjson"
    kvpub_status
    assert_equal "$ST" 0
}

@test "replay from a seq: [\"\", seq, payload] per batch, then the end marker" {
    n=$(batches_of pod-a)
    IN=$SAMPLE start_kvpub --wait-subs 1 --pod pod-a --hold 20s "$P" "$R"
    subscribe "$n"
    run "$PY" "$CHECK" replay "$R" --from 5
    assert_success
    [ "${#lines[@]}" -eq $((n - 5 + 1)) ]
    # Each reply: empty delimiter, 8-byte seq, the live payload.
    for k in $(seq 5 $((n - 1))); do
        want=$(jq -r "select(.seq == $k) | .payload" "$T/got.jsonl")
        assert_line --index $((k - 5)) "{\"frames\": [\"\", \"$(printf %016x "$k")\", \"$want\"]}"
    done
    assert_line --index $((n - 5)) '{"frames": ["", "ffffffffffffffff", ""]}'
    # A start past the newest seq gets the end marker only.
    run "$PY" "$CHECK" replay "$R" --from 1000
    assert_success
    assert_output '{"frames": ["", "ffffffffffffffff", ""]}'
}

@test "--reply-topic: [\"\", topic, seq, payload] and [\"\", \"\", ff*8, \"\"]" {
    n=$(batches_of pod-a)
    IN=$SAMPLE start_kvpub --wait-subs 1 --pod pod-a --topic kv@pod-a \
        --reply-topic --hold 20s "$P" "$R"
    subscribe "$n"
    assert_equal "$(jq -r .topic "$T/got.jsonl" | sort -u)" "kv@pod-a"
    run "$PY" "$CHECK" replay "$R" --from $((n - 2))
    assert_success
    topic=$(printf kv@pod-a | od -An -tx1 | tr -d ' \n')
    want=$(jq -r "select(.seq == $((n - 1))) | .payload" "$T/got.jsonl")
    assert_equal "${#lines[@]}" 3
    assert_line --index 1 "{\"frames\": [\"\", \"$topic\", \"$(printf %016x $((n - 1)))\", \"$want\"]}"
    assert_line --index 2 '{"frames": ["", "", "ffffffffffffffff", ""]}'
}

@test "--buffer keeps only the last N batches; bad requests get no reply" {
    n=$(batches_of pod-a)
    IN=$SAMPLE start_kvpub --wait-subs 1 --pod pod-a --buffer 4 --hold 20s "$P" "$R"
    subscribe "$n"
    # Asking for 0 silently starts at the oldest kept batch, as engines do.
    run "$PY" "$CHECK" replay "$R" --from 0
    assert_success
    assert_equal "${#lines[@]}" 5
    assert_line --index 0 --partial "\"$(printf %016x $((n - 4)))\""
    # Without the empty delimiter the ROUTER sees 2 frames: no reply at all.
    run "$PY" "$CHECK" replay "$R" --raw-request 0000000000000000 --timeout 1
    assert_failure
    assert_output ""
    run "$PY" "$CHECK" replay "$R" --raw-request ,,0000000000000000 --timeout 1
    assert_failure
    # And the ROUTER still answers a good one afterwards.
    run "$PY" "$CHECK" replay "$R" --from $((n - 1))
    assert_success
    assert_equal "${#lines[@]}" 2
}

@test "layout atom: ATOM's 13/4/2-slot arrays equal msgspec's bytes" {
    check_layout "$SAMPLE" pod-a atom
}

@test "--layout atom: ATOM's ROUTER: no delimiter, [oldest, latest] in the end marker" {
    n=$(batches_of pod-a)
    IN=$SAMPLE start_kvpub --wait-subs 1 --pod pod-a --layout atom \
        --buffer 4 --hold 20s "$P" "$R"
    subscribe "$n"
    # [seq, payload] per batch, then [ff*8, msgpack [oldest, latest]].
    run "$PY" "$CHECK" replay "$R" --from $((n - 2))
    assert_success
    assert_equal "${#lines[@]}" 3
    for k in $((n - 2)) $((n - 1)); do
        want=$(jq -r "select(.seq == $k) | .payload" "$T/got.jsonl")
        assert_line --index $((k - n + 2)) "{\"frames\": [\"$(printf %016x "$k")\", \"$want\"]}"
    done
    end=$("$PY" -c 'import msgpack, sys
print(msgpack.packb([int(sys.argv[1]), int(sys.argv[2])]).hex())' \
        $((n - 4)) $((n - 1)))
    assert_line --index 2 "{\"frames\": [\"ffffffffffffffff\", \"$end\"]}"
    # A request without the empty delimiter is answered too.
    run "$PY" "$CHECK" replay "$R" --raw-request "$(printf %016x $((n - 1)))"
    assert_success
    assert_equal "${#lines[@]}" 2
    # kvreplay reads ATOM's replies: the four batches buffered, in order.
    run_ndjson "$T/rep.ndjson" kvreplay --from $((n - 4)) "pod-a=$R"
    assert_success
    run jq -r .seq "$T/rep.ndjson"
    assert_equal "$(printf '%s\n' "$output" | uniq | tr '\n' ' ')" \
        "$((n - 4)) $((n - 3)) $((n - 2)) $((n - 1)) "
}

@test "--wait-subs 2: both subscribers get every batch" {
    n=$(batches_of pod-b)
    IN=$SAMPLE start_kvpub --wait-subs 2 --pod pod-b "$P"
    "$PY" "$CHECK" sub "$P" --count "$n" >"$T/a.jsonl" &
    PIDS+=($!)
    a=$!
    subscribe "$n"
    wait "$a"
    assert_equal "$(wc -l <"$T/a.jsonl")" "$n"
    cmp "$T/a.jsonl" "$T/got.jsonl"
    kvpub_status
    assert_equal "$ST" 0
}

@test "--loop on a pipe starts over with the same payloads, seq goes on" {
    n=$(batches_of pod-a)
    cat "$SAMPLE" | kvpub -v --loop --wait-subs 1 --pod pod-a --rate 2000/s "$P" 2>"$T/kvpub.err" &
    KVPUB=$!
    PIDS+=($KVPUB)
    subscribe $((2 * n + 1))
    run jq -r .seq "$T/got.jsonl"
    assert_equal "${lines[$((2 * n))]}" "$((2 * n))"
    for k in 0 1 $((n - 1)); do
        a=$(jq -r "select(.seq == $k) | .payload" "$T/got.jsonl")
        b=$(jq -r "select(.seq == $((k + n))) | .payload" "$T/got.jsonl")
        assert_equal "$a" "$b"
    done
    kill -TERM "$KVPUB"
    kvpub_status
    assert_equal "$ST" 143
}

@test "--synth: a consistent block tree, deterministic, pods share prompts" {
    for seed in 1 1 2; do
        kvpub --synth 1000 --seed "$seed" --wait-subs 1 "$P" 2>/dev/null &
        PIDS+=($!)
        subscribe 1000
        run "$PY" "$CHECK" synthcheck <"$T/got.jsonl"
        assert_success
        echo "$output" >"$T/check.$seed.$((i += 1))"
        # Everything but the timestamp (the first 10 bytes) is the seed's.
        jq -r '.payload[20:]' "$T/got.jsonl" >"$T/body.$seed.$i"
    done
    cmp "$T/body.1.1" "$T/body.1.2"
    ! cmp -s "$T/body.1.1" "$T/body.2.3"
    # Both seeds store blocks, evict (1024-block cache) and share the
    # system prompts' root blocks.
    run jq -c '[.removes > 0, .blocks > 1024]' "$T/check.2.3"
    assert_output "[true,true]"
    assert_equal "$(jq -c .roots "$T/check.1.1")" "$(jq -c .roots "$T/check.2.3")"
}

@test "bad lines are reported with their number and skipped" {
    printf '%s\n' '{"type":"AllBlocksCleared","seq":0}' 'not json' \
        '{"seq":1}' '{"type":"AllBlocksCleared","seq":2}' >"$T/in.ndjson"
    IN=$T/in.ndjson start_kvpub --wait-subs 1 --stats "$P"
    subscribe 2
    kvpub_status
    assert_equal "$ST" 0
    run cat "$T/kvpub.err"
    assert_output --partial "line 2"
    assert_output --partial "line 3"
    assert_output --partial '"batches":2'
    assert_output --partial '"bad_lines":2'
}

@test "bind failure exits 1; SIGTERM while holding exits 143" {
    IN=$SAMPLE start_kvpub --hold 30s "$P" "$R"
    sleep 0.3
    run kvpub "$P" </dev/null
    assert_equal "$status" 1
    assert_output --partial "bind"
    kill -TERM "$KVPUB"
    kvpub_status
    assert_equal "$ST" 143
}

@test "the examples of --help run" {
    kvpub --help | sed -n '/^EXAMPLES/,$p' | sed 1d |
        sed -e :a -e '/\\$/N; s/\\\n *//; ta' >"$T/examples"
    [ "$(grep -c '^ *kvpub ' "$T/examples")" -eq 3 ]
    p1=$(free_port)
    p2=$(free_port)
    while read -r cmd; do
        cmd=${cmd//5557/$p1}
        cmd=${cmd//5558/$p2}
        cmd=${cmd//capture.ndjson/$SAMPLE}
        cmd=${cmd//--hold 1m/--hold 1s}
        cmd=${cmd//ipc:\/\/\/tmp\/kv.pub/ipc://$T/kv.pub}
        sub=
        if [[ $cmd == *--wait-subs* ]]; then
            "$PY" "$CHECK" sub "ipc://$T/kv.pub" --count 1000 >"$T/ex.got" &
            sub=$!
            PIDS+=($sub)
        fi
        run timeout 20 bash -c "$cmd"
        assert_success
        if [ -n "$sub" ]; then
            wait "$sub"
            assert_equal "$(wc -l <"$T/ex.got")" 1000
        fi
    done <"$T/examples"
}

@test "-c connects the PUB to a subscriber that binds (kvsub -b)" {
    n=$(grep -c '"pod":"pod-a"' "$SAMPLE")
    kvsub -b -c "$n" --idle 10s "pod-a=$P" >"$T/out.ndjson" &
    sub=$!
    PIDS+=($sub)
    IN=$SAMPLE start_kvpub -c --wait-subs 1 --pod pod-a "$P"
    wait "$sub"
    assert_ndjson "$T/out.ndjson"
    diff <(grep '"pod":"pod-a"' "$SAMPLE") "$T/out.ndjson"
    kvpub_status
    assert_equal "$ST" 0
}

@test "ipc endpoints; SIGUSR1 prints the stats line without stopping" {
    P=ipc://$T/pub
    R=ipc://$T/replay
    n=$(batches_of pod-b)
    IN=$SAMPLE start_kvpub --wait-subs 1 --pod pod-b --hold 30s "$P" "$R"
    subscribe "$n"
    kill -USR1 "$KVPUB"
    i=0
    until grep -q '"batches"' "$T/kvpub.err"; do
        sleep 0.05
        i=$((i + 1))
        [ "$i" -lt 200 ]
    done
    run grep -c '"batches":'"$n"',' "$T/kvpub.err"
    assert_output 1
    kill -0 "$KVPUB"
    run "$PY" "$CHECK" replay "$R" --from $((n - 1))
    assert_success
    assert_equal "${#lines[@]}" 2
}

@test "--rate and --delay never publish early" {
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        echo '{"type":"AllBlocksCleared"}'
    done >"$T/ten.ndjson"
    t0=$(date +%s%N)
    run kvpub --stats --rate 20/s -i "$T/ten.ndjson" "$P"
    t1=$(date +%s%N)
    assert_success
    assert_output --partial '"batches":10,'
    # Batch k is due at k/20 s: the last one not before 450 ms.
    [ $(((t1 - t0) / 1000000)) -ge 450 ]
    t0=$(date +%s%N)
    run kvpub --delay 500ms -i "$T/ten.ndjson" "$P"
    t1=$(date +%s%N)
    assert_success
    [ $(((t1 - t0) / 1000000)) -ge 500 ]
}

@test "round trip through kvsub in the vllm-map-batch and sglang layouts" {
    jq -c 'select(.pod == "pod-a")' "$SAMPLE" >"$T/a.ndjson"
    jq -c 'del(.lora_name, .extra_keys, .group_idx, .kv_cache_spec_kind)
           | if .type == "BlockStored" and .seq % 3 == 1
             then . + {cache_salt: "salt-\(.seq)"} else . end' \
        "$T/a.ndjson" >"$T/a-sglang.ndjson"
    n=$(wc -l <"$T/a.ndjson")
    for layout in vllm-map-batch sglang; do
        in=$T/a.ndjson
        engine=vllm
        if [ "$layout" = sglang ]; then
            in=$T/a-sglang.ndjson
            engine=sglang
        fi
        IN=$in start_kvpub --wait-subs 1 --layout "$layout" "$P" "$R"
        run_ndjson "$T/out.ndjson" kvsub -c "$n" --idle 5s --engine "$engine" \
            "pod-a=$P,$R"
        assert_success
        diff "$in" "$T/out.ndjson"
        kvpub_status
        assert_equal "$ST" 0
    done
}

@test "the ROUTER drops replies past libzmq's HWM 1000 unless --replay-hwm 0" {
    R2=tcp://127.0.0.1:$(free_port)
    kvpub --synth 10000 --hold 60s "$P" "$R" 2>/dev/null &
    PIDS+=($!)
    kvpub --synth 10000 --hold 60s --replay-hwm 0 "tcp://127.0.0.1:$(free_port)" "$R2" 2>/dev/null &
    PIDS+=($!)
    # Published once the newest batch can be replayed.
    for r in "$R" "$R2"; do
        i=0
        until [ "$("$PY" "$CHECK" replay "$r" --from 9999 --timeout 1 | wc -l)" -eq 2 ]; do
            i=$((i + 1))
            [ "$i" -lt 20 ]
        done
    done
    # A DEALER that reads nothing for 2 s (receive HWM 1): with the
    # engine's HWM the ROUTER drops what does not fit, like the engine.
    "$PY" "$CHECK" replay "$R" --hwm 1 --pause 2 --timeout 3 >"$T/a" || true
    n=$(grep -vc ffffffffffffffff "$T/a")
    echo "default HWM: $n of 10000"
    [ "$n" -lt 10000 ]
    "$PY" "$CHECK" replay "$R2" --hwm 1 --pause 2 --timeout 3 >"$T/b"
    assert_equal "$(grep -vc ffffffffffffffff "$T/b")" 10000
}

@test "hostile lines are skipped; an unknown format version stops with 1" {
    {
        echo '{"type":"format","version":1}'
        echo '{"type":"BlockStored","block_hashes":"x"}'
        printf '\001\377\376{"type" \000 garbage\n'
        echo '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[['
        echo '{"type":"BlockStored","seq":99999999999999999999999}'
        echo '{"type":"BlockRemoved","block_hashes":["99999999999999999999999"]}'
        echo '{"type":"BlockStored","token_ids":[-1]}'
        echo '{"type":"AllBlocksCleared"}'
        echo '{"type":"AllBlocksCleared"}'
        echo '{"type":"format","version":2}'
        echo '{"type":"AllBlocksCleared"}'
    } >"$T/hostile.ndjson"
    run kvpub --stats -i "$T/hostile.ndjson" "$P"
    assert_equal "$status" 1
    assert_output --partial "line 10: "
    assert_output --partial '"batches":2,'
    assert_output --partial '"bad_lines":6,'
}
