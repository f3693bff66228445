#!/usr/bin/env bats
# The README's promises hold: its tour runs as written and prints what it
# shows, and the commands it names exist.

load helpers

@test "the README tour runs and prints what the README shows" {
    run "$PY" "$KVTAP_TOP/tests/readme_tour.py" "$KVTAP_TOP/README.md" \
        "$KVTAP_TOP" "$BATS_TEST_TMPDIR"
    assert_success
}

@test "the tour runner fails when the output differs" {
    # A copy of the README with one expected line changed must fail, so the
    # test above cannot pass by comparing nothing.
    sed 's/"depth":6,"tokens":96/"depth":5,"tokens":80/' \
        "$KVTAP_TOP/README.md" >"$BATS_TEST_TMPDIR/README.md"
    run "$PY" "$KVTAP_TOP/tests/readme_tour.py" "$BATS_TEST_TMPDIR/README.md" \
        "$KVTAP_TOP" "$BATS_TEST_TMPDIR"
    assert_failure
    assert_output --partial '"depth":6'
}

@test "every tool the README names has --help and a man page" {
    for t in kvsub kvreplay kvindex kvpub kvstat; do
        grep -q "\`$t\`" "$KVTAP_TOP/README.md"
        run "$t" --help
        assert_success
        [ -f "$KVTAP_TOP/man/$t.1" ]
    done
}

@test "the README names the two commands CI and users run" {
    grep -qx 'make demo .*' "$KVTAP_TOP/README.md"
    grep -qx 'make test .*' "$KVTAP_TOP/README.md"
    grep -qx 'WERROR=1 make test' "$KVTAP_TOP/.ci/run"
}

@test "every man page renders cleanly and documents what --help does" {
    for t in kvsub kvreplay kvindex kvpub kvstat; do
        local m="$KVTAP_TOP/man/$t.1"
        run groff -mdoc -ww -z -Tutf8 "$m"
        assert_success
        assert_output ''
        for s in SYNOPSIS DESCRIPTION OUTPUT 'EXIT STATUS' EXAMPLES; do
            grep -qx ".Sh $s" "$m"
        done
        # Every long option --help lists is in the man page too.
        for o in $("$t" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
            grep -q -- "${o#--}" "$m" || {
                echo "$t: $o is in --help but not in $m"
                return 1
            }
        done
    done
}

@test "every example uses the engines' ports: PUB 5557, replay 5600 (+rank)" {
    # vLLM's PUB default is 5557 and its replay socket has none; the
    # examples use 5600 (docs/protocol.md#configuring-vllm), which rank 1's
    # PUB (5558) does not collide with (docs/protocol.md#ports-with-data-parallelism).
    # docs/protocol.md itself explains the collision with 5558, so it is
    # not scanned.
    local f bad=0
    for t in kvsub kvreplay kvindex kvpub; do
        "$t" --help >"$BATS_TEST_TMPDIR/$t.help"
    done
    for f in "$KVTAP_TOP/README.md" "$KVTAP_TOP"/docs/*.md \
        "$KVTAP_TOP"/man/*.1 "$BATS_TEST_TMPDIR"/*.help; do
        [ "$f" = "$KVTAP_TOP/docs/protocol.md" ] && continue
        while read -r hit; do
            echo "$f: $hit"
            bad=1
        done < <(grep -noE 'tcp://[^ ,"'\'']*:[0-9]+' "$f" |
            grep -vE ':(5557|5600|5601)$')
    done
    [ "$bad" = 0 ]
}
