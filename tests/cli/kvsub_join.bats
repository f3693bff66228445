#!/usr/bin/env bats
# kvsub joining an engine that is already running (-o, --offset): what the
# replay buffer still holds is printed first, then the live stream, with no
# hole and no repeat at the seam.  kvpub plays the engine over ipc; every
# background process is killed in teardown.

load helpers
bats_require_minimum_version 1.5.0

setup() {
    T=$BATS_TEST_TMPDIR
    PIDS=()
    PUB=ipc://$T/pub
    REP=ipc://$T/rep
}

teardown() {
    kill_pids
}

# Starts kvpub in the background with the given arguments and its sockets.
start_kvpub() {
    kvpub "$@" "$PUB" "$REP" </dev/null 2>"$T/kvpub.err" &
    PIDS+=($!)
}

# Waits until the replay socket of kvpub holds seq $1: asks for it with
# kvreplay until it answers (kvpub has published that far).
wait_published() {
    local i=0
    until kvreplay -q --from "$1" --to "$1" --timeout 200ms "$REP" \
        2>/dev/null | grep -q "\"seq\":$1,"; do
        i=$((i + 1))
        [ "$i" -ge 100 ] && return 1
        sleep 0.05
    done
}

# The seqs of engine events in NDJSON file $1, collapsed to "first..last"
# when they are contiguous and each batch appears once.
seq_span() {
    jq -s -r '[.[] | select(.type|test("^[A-Z]")) | .seq] as $s
        | ($s | unique) as $u
        | if ($u | length) == ($u[-1] - $u[0] + 1)
          then "\($u[0])..\($u[-1])" else "holes" end' "$1"
}

@test "-o beginning: a late kvsub prints what a kvsub watching from seq 0 printed" {
    # 10000 batches at 5000/s: the late kvsub joins while kvpub publishes.
    start_kvpub --synth 10000 --rate 5000/s --buffer 20000 --wait-subs 1 \
        --hold 30s
    kvsub -o now --idle 1500ms pod-a="$PUB,$REP" >"$T/full.ndjson" \
        2>"$T/full.err" &
    local watcher=$!
    PIDS+=($watcher)
    wait_published 1000
    run_ndjson "$T/late.ndjson" kvsub --idle 1500ms --stats pod-a="$PUB,$REP"
    assert_success
    wait_pid "$watcher" 30
    assert_ndjson "$T/full.ndjson"
    run seq_span "$T/late.ndjson"
    assert_output "0..9999"
    # Byte for byte what the watcher printed: no hole, no repeat, same order.
    run cmp "$T/full.ndjson" "$T/late.ndjson"
    assert_success
    # Some batches came by replay (the rest live, or as duplicates).
    run jq -c '.sources[0] | [.replayed > 0, .gaps]' \
        <(grep '^{' "$T/late.ndjson.err")
    assert_output '[true,0]'
    run grep -c '^kvsub: pod-a: joined at seq [0-9]* (replayed [0-9]* batches from 0)$' \
        "$T/late.ndjson.err"
    assert_output 1
}

# Runs `kvsub ARGS | kvindex serve` until kvsub has been idle 1.5 s and
# writes the index to snapshot file $1 (what `kvindex dump` prints).
# The index snapshot file $1 holds, without where each pod's stream stood
# (its stream, seq_ts and seq_lines: a pod rebuilt from an engine snapshot
# read other lines than one that watched) and so without the end line,
# whose checksum covers them (docs/kvindex-snapshot.md#lines-in-this-order).
index_of() {
    grep -v '"type":"end"' "$1" |
        sed 's/,"stream":[^,]*,"seq_ts":[^,]*,"seq_lines":[0-9]*}$/}/'
}

kvsub_index() {
    local snap=$1
    shift
    kvsub --idle 1500ms "$@" pod-a="${SPEC:-$PUB,$REP}" 2>"$snap.kvsub.err" |
        kvindex serve -q -s "$snap.sock" --exit-on-eof --snapshot "$snap"
}

@test "a late kvsub | kvindex serve builds the index of one that watched from the start" {
    start_kvpub --synth 3000 --rate 1500/s --buffer 10000 --wait-subs 1 \
        --hold 30s
    kvsub_index "$T/full.snap" -o now &
    local watcher=$!
    PIDS+=($watcher)
    wait_published 1000
    kvsub_index "$T/late.snap" &
    local late=$!
    PIDS+=($late)
    kvsub_index "$T/now.snap" -o now
    wait_pid "$late" 30
    wait_pid "$watcher" 30
    run jq -c 'select(.type=="pod") | [.last_seq, .orphans, .blocks > 100]' \
        "$T/full.snap"
    assert_output '[2999,0,true]'
    run cmp "$T/full.snap" "$T/late.snap"
    assert_success
    # Joined live mid-stream without the history: stores of blocks whose
    # parents it never saw are orphans.
    # Past --degraded-orphans (100) the pod is degraded, so a router knows
    # its depths may be short; the watcher's pod is not.
    run jq -c 'select(.type=="pod") | [.last_seq, .orphans > 100, .degraded]' \
        "$T/now.snap"
    assert_output '[2999,true,true]'
    run jq -c 'select(.type=="pod") | .degraded' "$T/full.snap"
    assert_output 'false'
}

@test "a buffer that no longer reaches seq 0 gives a gap record 0..oldest-1 first" {
    start_kvpub --synth 500 --buffer 100 --hold 30s
    wait_published 499
    run_ndjson "$T/out.ndjson" kvsub --idle 1s pod-a="$PUB,$REP"
    assert_success
    run jq -c 'select(.type=="gap") | [.from, .to, .seq]' "$T/out.ndjson"
    assert_output '[0,399,399]'
    run jq -c -s '.[0].type' "$T/out.ndjson"
    assert_output '"gap"'
    run seq_span "$T/out.ndjson"
    assert_output "400..499"
    assert_equal "$stderr" "kvsub: warning: pod-a: gap 0..399 (the engine no longer has them)
kvsub: pod-a: joined at seq 500 (replayed 100 batches from 400)"
}

@test "-o SEQ starts at that seq; -o now prints only what arrives live" {
    start_kvpub --synth 500 --buffer 1000 --hold 30s
    wait_published 499
    run_ndjson "$T/out.ndjson" kvsub --idle 1s -o 450 pod-a="$PUB,$REP"
    assert_success
    run seq_span "$T/out.ndjson"
    assert_output "450..499"
    run grep -c '"type":"gap"' "$T/out.ndjson"
    assert_output 0
    assert_equal "$stderr" \
        "kvsub: pod-a: joined at seq 500 (replayed 50 batches from 450)"
    run_ndjson "$T/now.ndjson" kvsub --idle 1s -o now pod-a="$PUB,$REP"
    assert_success
    assert_output ""
    assert_equal "$stderr" ""
    run_ndjson "$T/all.ndjson" kvsub --idle 1s pod-a="$PUB,$REP"
    run seq_span "$T/all.ndjson"
    assert_output "0..499"
}

@test "kvsub started before the engine prints every seq from 0" {
    kvsub --idle 2s --replay-timeout 300ms pod-a="$PUB,$REP" \
        >"$T/out.ndjson" 2>"$T/err" &
    local kv=$!
    PIDS+=($kv)
    sleep 0.5
    # The slow joiner misses the first live batches; replay has them.
    start_kvpub --synth 100 --rate 200/s --hold 30s
    wait_pid "$kv" 30
    assert_ndjson "$T/out.ndjson"
    run seq_span "$T/out.ndjson"
    assert_output "0..99"
    run grep -c '"type":"gap"' "$T/out.ndjson"
    assert_output 0
}

@test "-o without a replay endpoint: a gap record for what came before" {
    start_kvpub --synth 300 --rate 200/s --hold 30s
    wait_published 100
    run_ndjson "$T/out.ndjson" kvsub --idle 1s "pod-a=$PUB"
    assert_success
    run jq -c -s '.[0] | [.type, .from]' "$T/out.ndjson"
    assert_output '["gap",0]'
    run grep -c '^kvsub: warning: pod-a: gap 0\.\.[0-9]* (no replay endpoint)$' \
        <<<"$stderr"
    assert_output 1
}

@test "-o: bad values are usage errors" {
    run kvsub -o soon tcp://h:1
    assert_failure 2
    assert_output "kvsub: --offset: expected beginning, now or a seq, not 'soon'
Try 'kvsub --help'."
    run kvsub -o -3 tcp://h:1
    assert_failure 2
}

@test "snapshot mode: a late kvsub | kvindex equals the full index, though the buffer is short" {
    # The peer plays vLLM in snapshot mode; its replay buffer holds the
    # last 20 of 300 batches, its snapshot the whole state.
    "$PY" "$PEER" --quiet --ready "$T/peer.ready" --pub "$PUB" --replay "$REP" \
        --snapshot "ipc://$T/snap" --stream-ids --count 300 --buffer 20 \
        --wait-subs 1 --hold 30 --pod pod-a 2>"$T/peer.err" &
    PIDS+=($!)
    wait_file "$T/peer.ready" 10
    kvsub_index "$T/full.snap" -o now &
    local watcher=$!
    PIDS+=($watcher)
    wait_published 299
    SPEC="$PUB,$REP,ipc://$T/snap" kvsub_index "$T/late.snap"
    wait_pid "$watcher" 30
    run cmp <(index_of "$T/full.snap") <(index_of "$T/late.snap")
    assert_success
    run cat "$T/late.snap.kvsub.err"
    assert_output "kvsub: pod-a: joined at seq 300 (snapshot at seq 299, then replayed 0 batches)"
    # Without the snapshot the buffer starts at 280: a gap, another index.
    kvsub_index "$T/buf.snap"
    run cat "$T/buf.snap.kvsub.err"
    assert_output "kvsub: warning: pod-a: gap 0..279 (the engine no longer has them)
kvsub: pod-a: joined at seq 300 (replayed 20 batches from 280)"
    run cmp <(index_of "$T/full.snap") <(index_of "$T/buf.snap")
    assert_failure
}

@test "snapshot mode: kvsub's lines of a snapshot, between snapshot_begin and snapshot_end" {
    "$PY" "$PEER" --quiet --ready "$T/peer.ready" --pub "$PUB" --replay "$REP" \
        --snapshot "ipc://$T/snap" --stream-ids --count 30 --buffer 5 \
        --hold 30 --pod pod-a --expect "$T/exp.ndjson" 2>"$T/peer.err" &
    PIDS+=($!)
    wait_file "$T/peer.ready" 10
    wait_published 29
    run_ndjson "$T/out.ndjson" kvsub --idle 1s --stats \
        "pod-a=$PUB,$REP,ipc://$T/snap"
    assert_success
    run jq -c -s '[first, last] | map([.type, .seq, .stream])' \
        "$T/out.ndjson"
    assert_output '[["snapshot_begin",29,"a0a0a0a0a0a0a0a00001020304050607"],["snapshot_end",29,"a0a0a0a0a0a0a0a00001020304050607"]]'
    # Every event the engine published, in order, under the snapshot's seq.
    run diff <(jq -c 'select(.type|test("^[A-Z]")) | del(.seq, .i, .ts, .stream)' "$T/out.ndjson") \
        <(jq -c 'del(.seq, .i, .ts, .stream)' "$T/exp.ndjson")
    assert_success
    run jq -c '.sources[0] | [.snapshots, .replayed, .gaps]' \
        <(grep '^{' "$T/out.ndjson.err")
    assert_output '[1,0,0]'
}

@test "kvpub --snapshot: a late kvsub | kvindex equals the full index, though the buffer is short" {
    # 300 batches, a replay buffer of 20: only the snapshot has the rest.
    # An engine in snapshot mode sends an empty batch every idle second, so
    # the kvsubs end by --duration, not --idle.
    start_kvpub --synth 300 --buffer 20 --snapshot "ipc://$T/snap" \
        --wait-subs 1 --hold 30s
    kvsub_index "$T/full.snap" -o now --duration 4s &
    local watcher=$!
    PIDS+=($watcher)
    wait_published 299
    SPEC="$PUB,$REP,ipc://$T/snap" kvsub_index "$T/late.snap" --duration 2500ms
    wait_pid "$watcher" 30
    run jq -c 'select(.type=="pod") | [.last_seq, .orphans, .blocks > 100]' \
        "$T/full.snap"
    assert_output '[299,0,true]'
    run cmp <(index_of "$T/full.snap") <(index_of "$T/late.snap")
    assert_success
    run cat "$T/late.snap.kvsub.err"
    assert_output "kvsub: pod-a: joined at seq 300 (snapshot at seq 299, then replayed 0 batches)"
}

@test "kvpub --snapshot: 24-byte seq frames, one stream id, idle batches print nothing" {
    start_kvpub --synth 5 --snapshot "ipc://$T/snap" --hold 30s
    wait_published 4
    # 2.5 s idle: at least two empty batches after the five.
    run_ndjson "$T/out.ndjson" kvsub -o now --duration 2500ms --stats \
        "pod-a=$PUB,$REP"
    assert_success
    assert_output ''
    run jq -c '.sources[0] | [.received >= 2, .batches == .received, .gaps, .decode_errors]' \
        < <(grep '^{' "$T/out.ndjson.err")
    assert_output '[true,true,0,0]'
    # From the snapshot, every line carries the process's stream id.
    run_ndjson "$T/all.ndjson" kvsub --duration 1s \
        "pod-a=$PUB,$REP,ipc://$T/snap"
    run jq -c -s '[map(.stream | length) | unique, length]' "$T/all.ndjson"
    assert_output '[[32],7]'
}
