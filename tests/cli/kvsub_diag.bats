#!/usr/bin/env bats
# kvsub says what is wrong: sources that cannot be told apart, endpoints
# that do not answer (socket monitoring, --probe) and sources gone silent
# (--warn-idle).  Every message and exit status is compared exactly.

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

@test "two sources with the same name are a usage error" {
    run --separate-stderr kvsub a=tcp://h:1 a=tcp://h:2
    assert_failure 2
    assert_output ''
    assert_equal "$stderr" "kvsub: two sources are named 'a' (tcp://h:1 and tcp://h:2); give each NAME= a different name
Try 'kvsub --help'."
    # The same PUB URI twice without names: the names are the URI.
    run --separate-stderr kvsub tcp://h:1 tcp://h:1
    assert_failure 2
    # With --dp-size the ranks are NAME/r: the same name and rank twice.
    printf 'a=tcp://h:1\na=tcp://h:7\n' >"$T/f.txt"
    run --separate-stderr kvsub --dp-size 2 --endpoints "$T/f.txt"
    assert_failure 2
    assert_equal "${stderr%%;*}" "kvsub: two sources are named 'a/0' (tcp://h:1 and tcp://h:7)"
}
