#!/usr/bin/env bats
# bench/ab, the one-process comparison of a revision's hot paths with the
# working tree's: it builds both sides and reports each path once, with
# both sides agreeing on every output.  Its timings are not checked (a
# benchmark, not a timed test); its shape and its output check are.

load helpers

setup() {
    D=$(mktemp -d)
}

teardown() {
    rm -rf "$D"
}

@test "bench/ab HEAD: five paths, a ratio each, both sides' outputs the same" {
    git -C "$KVTAP_TOP" rev-parse --verify -q HEAD >/dev/null ||
        skip "not a git checkout"
    "$PY" "$KVTAP_TOP/bench/gen_stream.py" "$D/s.bin" 300 >/dev/null
    AB_MATCH_DOCS=64 run "$KVTAP_TOP/bench/ab" -n 1 HEAD "$D/s.bin"
    assert_success
    assert_line --index 0 "bench/ab: HEAD (rev) against the working tree (tree)"
    assert_line --index 1 --regexp '^300 batches, [0-9]+ events, [0-9]+ lines; '
    assert_line --index 2 --regexp '^decode +rev +[0-9]+ ns/event +tree +[0-9]+ ns/event +tree/rev [0-9.]+ \(best of 1\), [0-9.]+ \(all\)$'
    assert_line --index 3 --regexp '^write +rev .* \(all\)$'
    assert_line --index 4 --regexp '^parse +rev +[0-9]+ ns/line .* \(all\)$'
    assert_line --index 5 --regexp '^ingest +rev +[0-9]+ ns/line .* \(all\)$'
    assert_line --index 6 --regexp '^match +rev +[0-9]+ ns/prompt +tree +[0-9]+ ns/prompt .* \(all\)$'
    [ "${#lines[@]}" -eq 7 ]
    refute_output --partial "OUTPUTS DIFFER"
}

@test "bench/ab HEAD on NDJSON lines: the parse, ingest and match paths" {
    git -C "$KVTAP_TOP" rev-parse --verify -q HEAD >/dev/null ||
        skip "not a git checkout"
    "$PY" "$KVTAP_TOP/bench/kvindex_gen.py" ingest "$D/in.ndjson" 2000
    # The last line without its newline still counts, as kvindex reads it.
    truncate -s -1 "$D/in.ndjson"
    [ "$(tail -c 1 "$D/in.ndjson")" = "}" ]
    AB_MATCH_DOCS=64 run "$KVTAP_TOP/bench/ab" -n 1 HEAD "$D/in.ndjson"
    assert_success
    assert_line --index 1 --regexp '^0 batches, 0 events, 2000 lines; '
    assert_line --index 2 --regexp '^parse +rev +[0-9]+ ns/line .* \(all\)$'
    assert_line --index 3 --regexp '^ingest +rev +[0-9]+ ns/line .* \(all\)$'
    assert_line --index 4 --regexp '^match +rev .* \(all\)$'
    [ "${#lines[@]}" -eq 5 ]
    refute_output --partial "OUTPUTS DIFFER"
}

@test "bench/ab without a revision prints its usage and exits 2" {
    run "$KVTAP_TOP/bench/ab"
    assert_failure 2
    assert_output "usage: bench/ab [-n ROUNDS] REV [STREAM]"
}

# bench_ingest -h once wrote its 82 MB stream to a file named "-h".
@test "bench_ingest with an option it does not know prints its usage and exits 2" {
    cd "$D"
    for a in -h --help "-r"; do
        run "$KVTAP_BUILD/bench/bench_ingest" "$a"
        assert_failure 2
        assert_output "usage: bench_ingest [FILE] | bench_ingest -r FILE"
    done
    run "$KVTAP_BUILD/bench/bench_ingest" a b
    assert_failure 2
    assert_equal "$(ls -A "$D")" ""
}

# bench/60's busy figure rests on it: the index whole, then the paced
# lines in their order, from their start again at their end.
@test "kvindex_feed.py: FIRST whole, then PACED's lines in order, round and round" {
    printf 'f1\nf2\n' >"$D/first"
    printf 'p1\np2\np3\n' >"$D/paced"
    touch "$D/go"
    timeout -s INT 1 /usr/bin/python3 "$KVTAP_TOP/bench/kvindex_feed.py" \
        3000 "$D/first" "$D/paced" "$D/go" >"$D/out" || true
    run head -n 2 "$D/out"
    assert_output $'f1\nf2'
    # Every later line is the next of p1 p2 p3, and they went round.
    run awk 'NR > 2 { want = "p" (NR - 3) % 3 + 1; if ($0 != want) bad++; n++ }
        END { print (bad + 0) " bad, " (n >= 6 ? "round" : "short") }' "$D/out"
    assert_output "0 bad, round"
    run /usr/bin/python3 "$KVTAP_TOP/bench/kvindex_feed.py" 10 "$D/first" /dev/null
    assert_failure
    assert_output --partial "holds no complete line"
}
