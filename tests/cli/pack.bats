#!/usr/bin/env bats
# The expected msgpack bytes of the unit tests (tests/data/pack_expect.txt
# and the "hex:" lines of tests/data/wire_encode.txt) must be exactly what
# python msgpack writes today: tests/peer/pack_expect.py regenerates them
# and compares, so nobody can edit an expectation by hand to match a bug.

load helpers

GEN="$KVTAP_TOP/tests/peer/pack_expect.py"

@test "the unit tests' expected bytes are python msgpack's" {
    run "$PY" "$GEN" --check
    assert_success
    assert_output ""
}

@test "an expected byte edited by hand is caught" {
    mkdir -p "$BATS_TEST_TMPDIR/tests/data"
    cp "$KVTAP_TOP"/tests/data/pack_expect.txt \
        "$KVTAP_TOP"/tests/data/wire_encode.txt "$BATS_TEST_TMPDIR/tests/data/"
    sed -i 's/^uint 128 cc80$/uint 128 80/' \
        "$BATS_TEST_TMPDIR/tests/data/pack_expect.txt"
    sed -i '0,/^hex: 93/s/^hex: 93/hex: 92/' \
        "$BATS_TEST_TMPDIR/tests/data/wire_encode.txt"
    run "$PY" "$GEN" --check --top "$BATS_TEST_TMPDIR"
    assert_failure 1
    assert_output "$BATS_TEST_TMPDIR/tests/data/pack_expect.txt: differs from what python msgpack writes
$BATS_TEST_TMPDIR/tests/data/wire_encode.txt: differs from what python msgpack writes"
}
