#!/usr/bin/env bats
# Every producer of docs/protocol.md#producers, end to end: the golden
# payloads of tests/peer/producers.py (whose expected NDJSON is written out
# there by hand, tests/data/fixtures/NAME.ndjson) are published live by the
# independent peer and must come out of kvsub exactly; where kvpub has the
# producer's layout, kvpub re-encodes the expected lines into the same
# bytes; and kvindex applies them as docs/kvindex.md says.

load helpers
bats_require_minimum_version 1.5.0

FIX="$KVTAP_TOP/tests/data/fixtures"

setup() {
    T=$BATS_TEST_TMPDIR
    PIDS=()
}

teardown() {
    kill_pids
}

# The kvsub options a fixture's NAME.opts asks for (engine=E).
fixture_opts() {
    local f="$FIX/$1.opts"
    [ -f "$f" ] || return 0
    sed -n 's/^engine=\(.*\)$/--engine \1/p' "$f"
}

# live NAME: publishes NAME.bin as seq 7 and prints what kvsub wrote.
live() {
    local name=$1 port n
    port=$(free_port)
    n=$(wc -l < "$FIX/$name.ndjson")
    "$PY" "$PEER" --quiet --pub "tcp://127.0.0.1:$port" --start-seq 7 \
        --payload "$FIX/$name.bin" --wait-subs 1 --hold 10 &
    PIDS+=($!)
    # shellcheck disable=SC2046
    kvsub -q -o now --count "$n" --idle 20s $(fixture_opts "$name") \
        "golden=tcp://127.0.0.1:$port"
}

@test "every producer fixture decodes live over tcp, exactly as written out" {
    local cases=0
    while read -r name layout; do
        run live "$name"
        assert_success
        diff <(printf '%s\n' "$output") "$FIX/$name.ndjson"
        refute_output --partial '"type":"decode_error"'
        refute_output --partial '"type":"skipped"'
        kill_pids
        PIDS=()
        cases=$((cases + 1))
    done < "$FIX/producers.list"
    [ "$cases" -ge 1 ]
}

@test "kvpub re-encodes each producer's lines into the producer's bytes" {
    local cases=0
    while read -r name layout; do
        [ "$layout" = "-" ] && continue
        port=$(free_port)
        "$PY" "$KVTAP_TOP/tests/peer/kvpub_check.py" sub \
            "tcp://127.0.0.1:$port" --count 1 > "$T/$name.got" &
        PIDS+=($!)
        run kvpub -q --layout "$layout" --wait-subs 1 \
            -i "$FIX/$name.ndjson" "tcp://127.0.0.1:$port"
        assert_success
        wait_pid "${PIDS[-1]}" 10
        got=$(jq -r .payload "$T/$name.got")
        want=$(od -An -v -tx1 "$FIX/$name.bin" | tr -d ' \n')
        assert_equal "$got" "$want"
        cases=$((cases + 1))
    done < "$FIX/producers.list"
    [ "$cases" -ge 1 ]
}

# placeholder STR: the token id docs/protocol.md#tensorrt-llm gives it.
placeholder() {
    "$PY" -c '
import sys
h = 2166136261
for b in sys.argv[1].encode():
    h = ((h ^ b) * 16777619) & 0xffffffff
print(h | 0x80000000)' "$1"
}

@test "TensorRT-LLM: kvindex keys placeholder tokens by their FNV-1a-32" {
    S=$T/kvi.sock
    # The fixture's store, as a root (its parent is not in the index).
    grep '"i":0' "$FIX/P01_trtllm.ndjson" |
        jq -c '.parent_block_hash = null' > "$T/store.ndjson"
    kvindex serve -q -m llama -s "$S" "$T/store.ndjson" &
    PIDS+=($!)
    kvindex ping -s "$S" -t 10s > /dev/null
    for i in $(seq 100); do
        [ "$(kvindex stats -r -s "$S" | jq .entries)" = 2 ] && break
        sleep 0.05
    done
    img=$(placeholder "<img>")
    aud=$(placeholder "<aud>")
    run kvindex match -r -s "$S" "[1,2,$img,4,5,$img,$aud,8]"
    assert_success
    assert_output '{"block_size":4,"blocks":2,"matches":[{"pod":"golden","dp_rank":0,"depth":2,"tokens":8,"percent":100,"media":["GPU"],"degraded":false}]}'
    # Other placeholders are other tokens: the second block no longer matches.
    run kvindex match -r -s "$S" "[1,2,$img,4,5,$img,$img,8]"
    assert_output --partial '"depth":1,'
}

@test "Mooncake: kvindex counts stores without tokens as invalid, applies clears" {
    run kvindex serve -q -s "$T/kvi.sock" -m deepseek --exit-on-eof --stats \
        "$FIX/P02_mooncake.ndjson"
    assert_success
    assert_equal "$(echo "$output" | jq -c '[.events.BlockStored,.events.BlockRemoved,.events.AllBlocksCleared,.rejected.invalid,.entries,.unknown_removed]')" '[0,2,1,1,0,0]'
}

@test "llm-d storage tier: kvindex counts the token-less stores as invalid" {
    run kvindex serve -q -s "$T/kvi.sock" -m llama --exit-on-eof --stats \
        "$FIX/P03_llmd_fs.ndjson"
    assert_success
    assert_equal "$(echo "$output" | jq -c '[.rejected.invalid,.entries,.events.BlockRemoved,.unknown_removed]')" '[2,0,1,1]'
}

@test "kvsub --stats names each source's producer and layout" {
    for c in "P01_trtllm trtllm [ts,events,rank] maps" \
        "P02_mooncake mooncake [ts,events,rank] ts_ms maps" \
        "P03_llmd_fs llmd-fs [ts,events] packed"; do
        read -r name producer layout <<< "$c"
        port=$(free_port)
        "$PY" "$PEER" --quiet --pub "tcp://127.0.0.1:$port" --start-seq 7 \
            --payload "$FIX/$name.bin" --wait-subs 1 --hold 10 &
        PIDS+=($!)
        kvsub -q -o now --stats --count "$(wc -l < "$FIX/$name.ndjson")" \
            --idle 20s "tcp://127.0.0.1:$port" > /dev/null 2> "$T/err"
        run jq -c '.sources[0] | [.producer, .layout]' "$T/err"
        assert_output "[\"$producer\",\"$layout\"]"
        kill_pids
        PIDS=()
    done
}

@test "llm-d storage tier: a stream from seq 1 has no gap at seq 0" {
    port=$(free_port)
    "$PY" "$PEER" --quiet --pub "tcp://127.0.0.1:$port" --start-seq 1 \
        --payload "$FIX/P03_llmd_fs.bin" --wait-subs 1 --hold 10 &
    PIDS+=($!)
    run kvsub -q --count 3 --idle 20s "tcp://127.0.0.1:$port"
    assert_success
    refute_output --partial '"type":"gap"'
    assert_equal "${#lines[@]}" 3
    # A vLLM stream seen from seq 1 on did lose seq 0.
    port=$(free_port)
    "$PY" "$PEER" --quiet --pub "tcp://127.0.0.1:$port" --start-seq 1 \
        --payload "$FIX/P01_trtllm.bin" --wait-subs 1 --hold 10 &
    PIDS+=($!)
    run kvsub -q --count 1 --idle 20s "tcp://127.0.0.1:$port"
    assert_output --partial '"type":"gap","from":0,"to":0}'
}

# media FILE: each block's hash and media after kvindex applied FILE.
media_after() {
    kvindex serve -q -m m -s "$T/m.sock" --snapshot "$T/m.snap" \
        --exit-on-eof "$1" || return 1
    grep '"type":"entry"' "$T/m.snap" | jq -c '[.block_hash, .media]' |
        tr '\n' ' '
}

@test "ATOM: kvindex moves transferred blocks and clears one medium" {
    head -2 "$FIX/P05_atom.ndjson" > "$T/moved.ndjson"
    run media_after "$T/moved.ndjson"
    assert_success
    assert_output '["11",["CPU"]] ["12",["GPU"]] '
    run media_after "$FIX/P05_atom.ndjson"
    assert_success
    assert_output '["12",["GPU"]] '
}

@test "media other than GPU index per medium; BlockInactive keeps the block" {
    head -3 "$FIX/P06_vllm_named.ndjson" > "$T/three.ndjson"
    run media_after "$T/three.ndjson"
    assert_success
    assert_output '["9223372036854775817",["GPU","CPU"]] '
    run media_after "$FIX/P06_vllm_named.ndjson"
    assert_success
    assert_output '["9223372036854775817",["GPU"]] '
}

@test "topics kv@<pod>@<model> name a source given without NAME=" {
    port=$(free_port)
    "$PY" "$PEER" --quiet --pub "tcp://127.0.0.1:$port" --count 3 \
        --topic kv@pod-7@llama-3 --pod pod-7 --model llama-3 \
        --expect "$T/exp.ndjson" --wait-subs 1 --hold 10 &
    PIDS+=($!)
    wait_file "$T/exp.ndjson" 10
    n=$(wc -l < "$T/exp.ndjson")
    kvsub -q -o now --count "$n" --idle 20s "tcp://127.0.0.1:$port" \
        > "$T/got.ndjson"
    diff "$T/got.ndjson" "$T/exp.ndjson"
    # NAME= and -m win over the topic.
    port=$(free_port)
    "$PY" "$PEER" --quiet --pub "tcp://127.0.0.1:$port" --count 1 \
        --topic kv@pod-7@llama-3 --wait-subs 1 --hold 10 &
    PIDS+=($!)
    run kvsub -q -o now -m mine --count 1 --idle 20s \
        "a=tcp://127.0.0.1:$port"
    assert_output --regexp '^\{"pod":"a","model":"mine","dp_rank":0,"seq":0,'
    port=$(free_port)
    "$PY" "$PEER" --quiet --pub "tcp://127.0.0.1:$port" --count 1 \
        --topic kv@pod-7@llama-3 --wait-subs 1 --hold 10 &
    PIDS+=($!)
    run kvsub -q -o now -m mine --count 1 --idle 20s "tcp://127.0.0.1:$port"
    assert_output --regexp '^\{"pod":"pod-7","model":"mine","dp_rank":0,'
}

@test "--endpoints: one line per rank on ports with no rule (vLLM tcp://*:0)" {
    p0=$(free_port)
    p1=$(free_port)
    for r in 0 1; do
        port=$p0
        [ "$r" = 1 ] && port=$p1
        "$PY" "$PEER" --quiet --pub "tcp://127.0.0.1:$port" --count 2 \
            --rank "$r" --pod "pod-a/$r" --expect "$T/exp$r.ndjson" \
            --wait-subs 1 --hold 10 &
        PIDS+=($!)
    done
    printf '# one rank a line\npod-a/0=tcp://127.0.0.1:%s\npod-a/1=tcp://127.0.0.1:%s\n' \
        "$p0" "$p1" > "$T/ranks.txt"
    wait_file "$T/exp0.ndjson" 10
    wait_file "$T/exp1.ndjson" 10
    n=$(cat "$T/exp0.ndjson" "$T/exp1.ndjson" | wc -l)
    kvsub -q -o now --count "$n" --idle 20s --endpoints "$T/ranks.txt" \
        > "$T/got.ndjson"
    diff <(grep '"pod":"pod-a/0"' "$T/got.ndjson") "$T/exp0.ndjson"
    diff <(grep '"pod":"pod-a/1"' "$T/got.ndjson") "$T/exp1.ndjson"
}

@test "older ATOM: two- and one-frame messages print without seq, then seqs" {
    port=$(free_port)
    "$PY" "$KVTAP_TOP/tests/peer/hostile.py" --pub "tcp://127.0.0.1:$port" \
        --wait-subs --payload "$FIX/P05_atom.bin" --seqs 7,8,9 --frames 2,1,3 &
    PIDS+=($!)
    kvsub -o now --stats --count 9 --idle 20s "golden=tcp://127.0.0.1:$port" \
        > "$T/got.ndjson" 2> "$T/err"
    # The fixture's lines without "seq" for each old message, then as is.
    sed 's/"seq":7,//' "$FIX/P05_atom.ndjson" > "$T/old.ndjson"
    sed 's/"seq":7,/"seq":9,/' "$FIX/P05_atom.ndjson" > "$T/new.ndjson"
    cat "$T/old.ndjson" "$T/old.ndjson" "$T/new.ndjson" > "$T/exp.ndjson"
    diff "$T/got.ndjson" "$T/exp.ndjson"
    # Connection notes depend on who was first up; the rest is exact.
    run grep -v -e '^{' -e 'connect' "$T/err"
    assert_output - <<'EOT'
kvsub: warning: golden: messages without a seq frame (older ATOM): their lines have no "seq", and a lost one cannot be seen or replayed
kvsub: golden: joined at seq 9 (replayed 0 batches)
EOT
    run jq -c '.sources[0] | [.producer, .layout, .received, .batches, .gaps, .decode_errors]' \
        <(grep '^{' "$T/err")
    assert_output '["atom","[ts,events,rank] arrays no_seq",3,3,0,0]'
    # kvindex applies lines without seq like any others.
    head -2 "$T/got.ndjson" > "$T/moved.ndjson"
    run media_after "$T/moved.ndjson"
    assert_success
    assert_output '["11",["CPU"]] ["12",["GPU"]] '
    run media_after "$T/old.ndjson"
    assert_success
    assert_output '["12",["GPU"]] '
}
