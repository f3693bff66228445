#!/usr/bin/env bats
# Numbers at the edges of what a double or an integer holds, through real
# processes.  CI also runs this file against the clang sanitizer build
# (.ci/run), whose UBSan checks float-to-integer casts that gcc's leaves out:
# an out-of-range cast there aborts the tool and fails the test.

load helpers
load kvindex_helpers

setup() {
    S=$BATS_TEST_TMPDIR/kv.sock
    PIDS=()
}

teardown() {
    kill_pids
}

@test "kvindex keeps a ts of 1e86 and prints it back (no cast past int64)" {
    printf '%s\n' '{"pod":"p","ts":1e86,"type":"AllBlocksCleared"}' \
        '{"pod":"q","ts":-1e86,"type":"AllBlocksCleared"}' \
        '{"pod":"r","ts":9223372036854775808,"type":"AllBlocksCleared"}' |
        kvindex serve -s "$S" 3>&- &
    PIDS+=($!)
    kvindex ping -s "$S" -t 5s >/dev/null
    wait_lines 3
    run_ndjson "$BATS_TEST_TMPDIR/out" kvindex pods -s "$S"
    [ "$status" -eq 0 ]
    [ "$output" = '{"id":null,"ok":true,"data":{"pods":[{"pod":"p","dp_rank":null,"blocks":0,"last_seq":null,"last_ts":1e+86,"degraded":false,"orphans":0,"misaligned":0},{"pod":"q","dp_rank":null,"blocks":0,"last_seq":null,"last_ts":-1e+86,"degraded":false,"orphans":0,"misaligned":0},{"pod":"r","dp_rank":null,"blocks":0,"last_seq":null,"last_ts":9.223372036854776e+18,"degraded":false,"orphans":0,"misaligned":0}]}}' ]
}
