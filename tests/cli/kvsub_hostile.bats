#!/usr/bin/env bats
# kvsub against engines that misbehave (issue 14): a replay socket that
# never goes quiet beside a healthy engine, a frame over --max-msg, and an
# engine restarted so fast that its seqs go on upward.  The healthy peer is
# tests/peer/peer.py; the hostile ones are tests/peer/hostile.py.

load helpers
bats_require_minimum_version 1.5.0

HOSTILE="$KVTAP_TOP/tests/peer/hostile.py"

setup() {
    T=$BATS_TEST_TMPDIR
    PIDS=()
}

teardown() {
    kill_pids
}

# Waits up to $4 seconds until file $1 has at least $3 lines matching
# the grep pattern $2.
wait_grep() {
    local f=$1 pat=$2 n=$3 t=$4 i=0
    while [ "$(grep -c -- "$pat" "$f")" -lt "$n" ]; do
        sleep 0.05
        i=$((i + 1))
        [ "$i" -ge $((t * 20)) ] && return 1
    done
    return 0
}

@test "a replay socket that never goes quiet stalls only its own source" {
    "$PY" "$PEER" --quiet --ready "$T/a.ready" --pub "ipc://$T/a" \
        --replay "ipc://$T/ar" --count 150 --rate 50 --wait-subs 1 \
        --hold 60 --pod pod-a --expect "$T/a.exp" --done "$T/a.done" &
    PIDS+=($!)
    "$PY" "$HOSTILE" --pub "ipc://$T/b" --replay "ipc://$T/br" \
        --seqs 0-2,10-12,20-22 --rate 4 --wait-subs --ready "$T/b.ready" &
    PIDS+=($!)
    wait_file "$T/a.ready" 10
    wait_file "$T/b.ready" 10
    kvsub -u --replay-timeout 1s "pod-a=ipc://$T/a,ipc://$T/ar" \
        "pod-b=ipc://$T/b,ipc://$T/br" >"$T/out" 2>"$T/err" &
    PIDS+=($!)
    # pod-a publishes 150 batches in 3s; without the fix its output stood
    # still behind pod-b's first fill for as long as pod-b answered.
    # 10s after the last batch, every line of pod-a must be out.
    wait_file "$T/a.done" 20
    wait_grep "$T/out" '"pod":"pod-a"' "$(wc -l <"$T/a.exp")" 10 || true
    grep '"pod":"pod-a"' "$T/out" >"$T/a.got"
    run cmp "$T/a.got" "$T/a.exp"
    assert_success
    # pod-b's first hole ends at the fill's timeout as a gap record.
    wait_grep "$T/out" '"pod":"pod-b".*"type":"gap"' 1 10 || true
    run jq -c 'select(.pod == "pod-b" and .type == "gap") | [.from, .to]' \
        "$T/out"
    assert_line --index 0 '[3,9]'
    run grep -F 'kvsub: warning: pod-b: gap 3..9 (replay timed out)' "$T/err"
    assert_success
    assert_ndjson "$T/out"
}

@test "a frame over --max-msg: a warning, a reconnect, a gap record, then the rest" {
    "$PY" "$HOSTILE" --pub "ipc://$T/b" --seqs 0-19 --rate 4 --big 2000000 \
        --big-seq 2 --wait-subs --ready "$T/b.ready" &
    PIDS+=($!)
    wait_file "$T/b.ready" 10
    run_ndjson "$T/out" kvsub --max-msg 1M --idle 5s "pod-b=ipc://$T/b"
    assert_success
    # Seqs 0 and 1, a gap from 2 to the last seq lost while libzmq held the
    # connection closed, then every later seq up to 19.
    run jq -c -s '[.[] | if .type == "gap" then "gap \(.from)..\(.to)"
                         else .seq end]' "$T/out"
    to=$(jq -s 'map(select(.type == "gap")) | .[0].to' "$T/out")
    rest=$(seq -s, $((to + 1)) 19)
    assert_output "[0,1,\"gap 2..$to\",$rest]"
    run grep -cF "kvsub: warning: pod-b: ipc://$T/b closed the connection and does not retry: a message over --max-msg (1048576 bytes) or a protocol error; reconnecting" "$T/out.err"
    assert_output 1
    run grep -cF "kvsub: warning: pod-b: gap 2..$to (no replay endpoint)" "$T/out.err"
    assert_output 1
}

@test "--max-msg takes a size from 1K to 4G" {
    run kvsub --max-msg 10 tcp://127.0.0.1:1
    assert_failure 2
    assert_output "kvsub: --max-msg: '10' is out of range (1K..4G)
Try 'kvsub --help'."
    run kvsub --max-msg 5x tcp://127.0.0.1:1
    assert_failure 2
    assert_output "kvsub: --max-msg: '5x' is not a size (e.g. 4096, 64K, 1M)
Try 'kvsub --help'."
}

# quick_restart B_ARGS...: peer A publishes seqs 0-139 and is killed; peer
# B, a new process on the same endpoints with other timestamps, publishes
# 0-1499 at 3,000 batches/s with B_ARGS.  kvsub must print A's batches, a
# restart record, then all of B's, and nothing else.
quick_restart() {
    "$PY" "$PEER" --quiet --ready "$T/a.ready" --pub "ipc://$T/p" \
        --replay "ipc://$T/r" --count 140 --rate 3000 --wait-subs 1 \
        --hold 60 --pod pod-a --expect "$T/a.exp" &
    local a=$!
    PIDS+=($a)
    wait_file "$T/a.ready" 10
    kvsub -u --replay-timeout 10s "pod-a=ipc://$T/p,ipc://$T/r" \
        >"$T/out" 2>"$T/err" &
    local sub=$!
    PIDS+=($sub)
    wait_grep "$T/out" '"pod":"pod-a"' "$(wc -l <"$T/a.exp")" 20
    kill -9 "$a"
    "$PY" "$PEER" --quiet --ready "$T/b.ready" --pub "ipc://$T/p" \
        --replay "ipc://$T/r" --count 1500 --rate 3000 --ts0 1700001000 \
        --hold 60 --pod pod-a --expect "$T/b.exp" "$@" &
    PIDS+=($!)
    # Every line of A and B and the restart record (without the fix: one
    # line less, and the wait runs out).
    wait_file "$T/b.ready" 20
    wait_grep "$T/out" '"pod":"pod-a"' \
        "$(($(wc -l <"$T/a.exp") + 1 + $(wc -l <"$T/b.exp")))" 30 || true
    kill "$sub"
    wait "$sub" || true
    assert_ndjson "$T/out"
    run jq -c 'select(.type == "restart") | [.seq, .last_seq]' "$T/out"
    assert_output '[0,139]'
    # The restart record carries the ts of the batch that revealed it.
    grep -v '"type":"restart"' "$T/out" >"$T/got"
    cat "$T/a.exp" "$T/b.exp" >"$T/want"
    run cmp "$T/got" "$T/want"
    assert_success
    run grep -F "kvsub: warning: pod-a: restart: seq " "$T/err"
    assert_output --regexp "after 139 \(after a reconnect, the engine holds other bytes at the last seq seen\)$"
}

@test "an engine restarted fast, whose seqs pass the old ones before kvsub reconnects, is a restart" {
    # Seqs 0-299 of the new process reach replay only: the first one kvsub
    # can see live is 300, past the old process's 139.
    quick_restart --withhold 0-299
}

@test "an engine restarted fast whose first live seq equals the last one seen is a restart, not a duplicate" {
    quick_restart --withhold 0-138 --wait-subs 1
}

@test "no line over kvindex's default --max-line: such a batch becomes a decode_error record" {
    # 12M control characters in one event: 72M of JSON, over the 64 MiB
    # that kvindex reads by default.
    "$PY" "$HOSTILE" --pub "ipc://$T/b" --seqs 0-2 --rate 4 --big-seq 1 \
        --wide 12000000 --wait-subs --ready "$T/b.ready" &
    PIDS+=($!)
    wait_file "$T/b.ready" 10
    run_ndjson "$T/out" kvsub --max-msg 100M -c 3 --idle 10s "pod-b=ipc://$T/b"
    assert_success
    run jq -c '[.seq, .type]' "$T/out"
    assert_output '[0,"BlockStored"]
[1,"decode_error"]
[2,"BlockStored"]'
    run jq -r 'select(.type == "decode_error") | "\(.error) \(.bytes)"' "$T/out"
    assert_output "an event line of 72000264 bytes is over the 67108864-byte line limit 12000152"
    run kvindex serve --help
    assert_output --partial "(default 64M,"
}
