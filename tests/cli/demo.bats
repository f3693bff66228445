#!/usr/bin/env bats
# `make demo` (scripts/demo) runs in the test suite: two kvpub pods ->
# kvsub -> kvindex serve, one match query.  It must find pod-a's prefix
# (and pod-b's share of the system prompt), print one stats line, and leave
# no process and no temporary directory behind.

load helpers

# Checks a demo's output in $output: the match answer and the stats line,
# then that nothing the demo started is still running.
check_demo() {
    local match stats sockdir
    match=$(printf '%s\n' "$output" | grep '^{"id":.*"matches"')
    stats=$(printf '%s\n' "$output" | grep -A1 '^\$ kvindex stats' | tail -n 1)
    # The prompt starts like one of pod-a's requests: pod-a holds all of
    # its full blocks; pod-b holds the shared system prompt, fewer blocks.
    run jq -e '.ok and (.data.matches | length == 2)
        and .data.matches[0].pod == "pod-a"
        and .data.matches[0].depth == .data.blocks
        and .data.matches[0].depth > 0
        and .data.matches[1].pod == "pod-b"
        and .data.matches[1].depth > 0
        and .data.matches[1].depth < .data.matches[0].depth' <<<"$match"
    assert_success
    run jq -e '.pods == 2 and .events.BlockStored > 0 and .rejected.orphan == 0' <<<"$stats"
    assert_success
    # Every endpoint and the socket it printed are gone with their processes.
    [ "$(printf '%s\n' "$DEMO_OUT" | grep -cE 'tcp://127\.0\.0\.1:[0-9]+')" -eq 2 ]
    for ep in $(printf '%s\n' "$DEMO_OUT" | grep -oE 'tcp://127\.0\.0\.1:[0-9]+'); do
        run pgrep -f -- "${ep#tcp://}"
        assert_failure
    done
    sockdir=$(printf '%s\n' "$DEMO_OUT" | sed -n 's|^kvsub -> kvindex serve -s \(.*\)/kvindex.sock$|\1|p')
    [ -n "$sockdir" ]
    run pgrep -f -- "$sockdir"
    assert_failure
    [ ! -e "$sockdir" ]
}

@test "make demo: a match with pod-a deepest and pod-b on the shared prefix" {
    run make -s -C "$KVTAP_TOP" demo
    assert_success
    DEMO_OUT=$output
    assert_output --partial "pod-a: kvpub on tcp://127.0.0.1:"
    assert_output --partial "pod-b: kvpub on tcp://127.0.0.1:"
    check_demo
}

@test "scripts/demo --synth: the same pipeline on a synthetic workload" {
    run "$KVTAP_TOP/scripts/demo" --synth
    assert_success
    DEMO_OUT=$output
    assert_output --partial "300 synthetic batches"
    check_demo
}

@test "scripts/demo rejects unknown arguments" {
    run "$KVTAP_TOP/scripts/demo" --bogus
    assert_equal "$status" 2
    assert_output --partial "usage: scripts/demo"
}

@test "an interrupted demo stops everything it started" {
    for delay in 0.1 0.4 0.7; do
        # Its own session: whatever it started is found by session id.
        setsid "$KVTAP_TOP/scripts/demo" >"$BATS_TEST_TMPDIR/out" 2>&1 &
        pid=$!
        sleep "$delay"
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" || true
        run pgrep -s "$pid"
        assert_failure
    done
}
