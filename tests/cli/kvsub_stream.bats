#!/usr/bin/env bats
# vLLM's snapshot mode on the live socket, played by the independent peer
# (tests/peer/peer.py --stream-ids): 24-byte seq frames (seq + a 16-byte
# stream id per publisher process), idle empty batches, and a new stream id
# as a restart whatever the seq does.

load helpers
bats_require_minimum_version 1.5.0

setup() {
    T=$BATS_TEST_TMPDIR
    PIDS=()
}

teardown() {
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
}

start_peer() {
    "$PY" "$PEER" --quiet --ready "$T/peer.ready" "$@" 2>"$T/peer.err" &
    PIDS+=($!)
    wait_file "$T/peer.ready" 10
}

lines() { wc -l <"$1" | tr -d ' '; }

@test "24-byte seq frames decode; lines carry the stream id; idle batches print nothing" {
    start_peer --pub "ipc://$T/pub" --replay "ipc://$T/rep" --count 20 \
        --stream-ids --heartbeats 3,4,5,12 --wait-subs 1 --pod pod-a \
        --expect "$T/exp.ndjson"
    run_ndjson "$T/out.ndjson" kvsub -o now -c "$(lines "$T/exp.ndjson")" \
        --idle 5s --stats "pod-a=ipc://$T/pub,ipc://$T/rep"
    assert_success
    run cmp "$T/out.ndjson" "$T/exp.ndjson"
    assert_success
    run jq -r -s 'map(.stream) | unique | .[]' "$T/out.ndjson"
    assert_output "a0a0a0a0a0a0a0a00001020304050607"
    # The empty batches came, no line and no gap for them.
    run jq -c '.sources[0] | [.received, .batches, .gaps, .decode_errors]' \
        < <(grep '^{' "$T/out.ndjson.err")
    assert_output "[20,20,0,0]"
    run grep -c '"seq":[345],' "$T/out.ndjson"
    assert_output 0
}

@test "a new stream id is a restart even when the seq goes on upward" {
    # The new process's seqs 0-14 never arrive live: the first one kvsub
    # sees is 15, above the old process's last (9).  Only the stream id
    # tells a restart from a gap.
    start_peer --pub "ipc://$T/pub" --replay "ipc://$T/rep" --count 30 \
        --restart-after 10 --withhold-new 0-14 --stream-ids --wait-subs 1 \
        --pod pod-a --expect "$T/exp.ndjson"
    run_ndjson "$T/out.ndjson" kvsub -o now -c "$(lines "$T/exp.ndjson")" \
        --idle 5s "pod-a=ipc://$T/pub,ipc://$T/rep"
    assert_success
    run jq -c 'select(.type=="restart") | [.seq, .last_seq, .stream]' \
        "$T/out.ndjson"
    assert_output '[0,9,"a1a1a1a1a1a1a1a10001020304050607"]'
    run grep -F 'kvsub: warning: pod-a: restart: seq 15 after 9 (new stream id)' \
        <<<"$stderr"
    assert_success
    # The restart record carries the ts of the batch that revealed it; the
    # rest, the new process's 0-14 fetched by replay included, is exact.
    jq -c 'if .type == "restart" then del(.ts) else . end' "$T/out.ndjson" \
        >"$T/a.ndjson"
    jq -c 'if .type == "restart" then del(.ts) else . end' "$T/exp.ndjson" \
        >"$T/b.ndjson"
    run cmp "$T/a.ndjson" "$T/b.ndjson"
    assert_success
}
