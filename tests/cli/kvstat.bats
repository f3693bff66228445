#!/usr/bin/env bats
# kvstat on crafted captures.  Expected rows come from the independent model
# in tests/peer/kvstat_model.py (which keys blocks by their whole prefix of
# tokens instead of a hash) or are written out by hand; every comparison is
# of the exact output text.

load helpers
bats_require_minimum_version 1.5.0

MODEL="$KVTAP_TOP/tests/peer/kvstat_model.py"

setup() {
    D=$BATS_TEST_TMPDIR
    # pod-a rank 0: GPU and CPU copies, a removal with a null medium (every
    # medium) naming an unknown hash, an orphan with an out-of-order ts, a
    # gap, a removal on CPU only, a clear.  pod-a rank 1 shares a prefix,
    # restarts and goes on; pod-a with a null rank is a decode error.
    cat >"$D/a.ndjson" <<'EOF'
{"pod":"pod-a","dp_rank":0,"seq":0,"i":0,"ts":100,"type":"BlockStored","block_hashes":["1","2"],"parent_block_hash":null,"token_ids":[1,2,3,4],"block_size":2,"medium":"GPU"}
{"pod":"pod-a","dp_rank":0,"seq":1,"i":0,"ts":101.5,"type":"BlockStored","block_hashes":["3"],"parent_block_hash":"2","token_ids":[5,6],"block_size":2,"medium":null}
{"pod":"pod-a","dp_rank":0,"seq":2,"i":0,"ts":102,"type":"BlockStored","block_hashes":["1","2"],"parent_block_hash":null,"token_ids":[1,2,3,4],"block_size":2,"medium":"CPU"}
{"pod":"pod-a","dp_rank":0,"seq":3,"i":0,"ts":104,"type":"BlockRemoved","block_hashes":["2","99"],"medium":null}
{"pod":"pod-a","dp_rank":0,"seq":4,"i":0,"ts":103,"type":"BlockStored","block_hashes":["4"],"parent_block_hash":"77","token_ids":[9,9],"block_size":2,"medium":"GPU"}
{"pod":"pod-a","dp_rank":0,"seq":9,"ts":105,"type":"gap","from":5,"to":8}
{"pod":"pod-a","dp_rank":0,"seq":10,"i":0,"ts":112,"type":"BlockRemoved","block_hashes":["1"],"medium":"CPU"}
{"pod":"pod-a","dp_rank":0,"seq":11,"i":0,"ts":125,"type":"AllBlocksCleared"}
{"pod":"pod-a","dp_rank":0,"seq":12,"i":0,"ts":126,"type":"BlockStored","block_hashes":["1"],"parent_block_hash":null,"token_ids":[1,2],"block_size":2,"medium":"GPU"}
{"pod":"pod-a","dp_rank":1,"seq":0,"i":0,"ts":100.25,"type":"BlockStored","block_hashes":["11","12","13"],"parent_block_hash":null,"token_ids":[1,2,3,4,7,8],"block_size":2,"medium":"GPU"}
{"pod":"pod-a","dp_rank":1,"seq":5,"ts":110,"type":"restart","last_seq":0}
{"pod":"pod-a","dp_rank":null,"seq":6,"type":"decode_error","error":"bad","bytes":3}
{"pod":"pod-a","dp_rank":1,"seq":7,"i":0,"ts":111,"type":"BlockStored","block_hashes":["11"],"parent_block_hash":null,"token_ids":[1,2],"block_size":2,"medium":"GPU"}
{"pod":"pod-a","dp_rank":1,"seq":7,"ts":111,"type":"skipped","tag":"Foo","count":2}
EOF
    # pod-b (no rank): an integer hash, a line that is not JSON, a removed
    # parent that breaks the chain of a later store.
    cat >"$D/b.ndjson" <<'EOF'
{"pod":"pod-b","seq":0,"i":0,"ts":99,"type":"BlockStored","block_hashes":[-5],"parent_block_hash":null,"token_ids":[1,2],"block_size":2}
{"pod":"pod-b","seq":1,"i":0,"ts":130,"type":"BlockStored","block_hashes":["21"],"parent_block_hash":-5,"token_ids":[3,4],"block_size":2,"medium":"GPU"}
this is not json
{"pod":"pod-b","seq":2,"i":0,"ts":131,"type":"BlockRemoved","block_hashes":["18446744073709551611"],"medium":"GPU"}
{"pod":"pod-b","seq":3,"i":0,"ts":132,"type":"BlockStored","block_hashes":["22"],"parent_block_hash":"21","token_ids":[5,6],"block_size":2,"medium":"GPU"}
EOF
}

teardown() {
    # A tmux test that failed half-way leaves its server behind.
    if [ -n "${TMUX_SOCK:-}" ]; then
        tmux -S "$TMUX_SOCK" kill-server 2>/dev/null || true
    fi
}

# same_as_model ARGS...: kvstat ARGS a.ndjson b.ndjson prints exactly what
# the model prints, and at least one row (so two empty outputs cannot pass).
same_as_model() {
    "$PY" "$MODEL" "$@" "$D/a.ndjson" "$D/b.ndjson" >"$D/want"
    [ -s "$D/want" ]
    run --separate-stderr kvstat "$@" "$D/a.ndjson" "$D/b.ndjson"
    assert_success
    diff -u "$D/want" <(printf '%s\n' "$output")
}

@test "summary matches the model (gaps, restarts, clears, media, orphans)" {
    same_as_model summary
}

@test "summary counts what the crafted capture holds" {
    run --separate-stderr kvstat summary "$D/a.ndjson" "$D/b.ndjson"
    assert_success
    assert_line --index 1 '{"pod":"pod-a","dp_rank":0,"events":9,"stored_events":5,"removed_events":2,"cleared":1,"blocks_stored":7,"blocks_removed":3,"unknown_removed":1,"orphans":1,"peak_blocks":5,"final_blocks":1,"ts_first":100,"ts_last":126,"events_per_s":0.34615384615384615,"gaps":1,"lost_seqs":4,"restarts":0,"decode_errors":0,"skipped":0,"ts_backwards":1}'
    assert_line --index 0 '{"pod":"pod-a","dp_rank":null,"events":1,"stored_events":0,"removed_events":0,"cleared":0,"blocks_stored":0,"blocks_removed":0,"unknown_removed":0,"orphans":0,"peak_blocks":0,"final_blocks":0,"ts_first":null,"ts_last":null,"events_per_s":null,"gaps":0,"lost_seqs":0,"restarts":0,"decode_errors":1,"skipped":0,"ts_backwards":0}'
    [ "${#lines[@]}" -eq 4 ]
    [ "$stderr" = "kvstat: warning: $D/b.ndjson:3: not a JSON object
kvstat: warning: 1 lines were not kvtap NDJSON and were skipped" ]
}

@test "rate matches the model, with empty intervals" {
    same_as_model rate --every 10s
    same_as_model rate --every 2.5
}

@test "lifetime matches the model: media, censored, negative" {
    same_as_model lifetime
    same_as_model lifetime --hist
}

@test "lifetime of pod-a/0 by hand" {
    run --separate-stderr kvstat lifetime "$D/a.ndjson"
    assert_success
    # GPU: 2 removed at 104 (stored 100: 4s), 1 and 3 cleared at 125 (25s
    # and 23.5s), 4 cleared at 125 (stored 103: 22s); 1 alive at the end.
    # CPU: 2 removed at 104 (2s), 1 removed at 112 (10s).
    assert_line --index 0 '{"pod":"pod-a","dp_rank":0,"medium":"GPU","ended":4,"censored":1,"negative":0,"p50":22,"p90":25,"p99":25,"max":25}'
    assert_line --index 1 '{"pod":"pod-a","dp_rank":0,"medium":"CPU","ended":2,"censored":0,"negative":0,"p50":2,"p90":10,"p99":10,"max":10}'
    # rank 1: three blocks censored by the restart, one alive at the end.
    assert_line --index 2 '{"pod":"pod-a","dp_rank":1,"medium":"GPU","ended":0,"censored":4,"negative":0,"p50":null,"p90":null,"p99":null,"max":null}'
    [ "${#lines[@]}" -eq 3 ]
}

@test "a removal before its store (out-of-order ts) counts as negative" {
    cat >"$D/neg.ndjson" <<'EOF'
{"pod":"p","dp_rank":0,"seq":0,"ts":50,"type":"BlockStored","block_hashes":["1"],"parent_block_hash":null,"token_ids":[1],"block_size":1}
{"pod":"p","dp_rank":0,"seq":1,"ts":40,"type":"BlockRemoved","block_hashes":["1"],"medium":null}
EOF
    run --separate-stderr kvstat lifetime "$D/neg.ndjson"
    assert_success
    assert_output '{"pod":"p","dp_rank":0,"medium":"GPU","ended":0,"censored":0,"negative":1,"p50":null,"p90":null,"p99":null,"max":null}'
}

@test "sharing matches the model, in time order across files" {
    same_as_model sharing
    same_as_model sharing --holders
}

@test "sharing by hand: pod-a/1 stored a prefix pod-a/0 held" {
    run --separate-stderr kvstat sharing "$D/a.ndjson" "$D/b.ndjson"
    assert_success
    # Keys by prefix, in ts order: pod-b holds (1,2) from 99.  pod-a/0
    # stores (1,2) [held by b] and (1,2,3,4) at 100, (1,2,3,4,5,6) at
    # 101.5, an orphan (no key) at 103, is cleared at 125 and stores (1,2)
    # again at 126 [held by b and a/1].  pod-a/1 stores (1,2) [b, a/0],
    # (1,2,3,4) [a/0] and (1,2,3,4,7,8) at 100.25, restarts, stores (1,2)
    # [b, a/0] at 111.  pod-b stores (1,2,3,4) at 130 and (1,2,3,4,5,6) at
    # 132, when nobody else holds them.
    assert_line --index 1 '{"pod":"pod-a","dp_rank":0,"distinct":3,"computed":4,"elsewhere":2,"share":0.5,"unkeyed":1}'
    assert_line --index 2 '{"pod":"pod-a","dp_rank":1,"distinct":3,"computed":4,"elsewhere":3,"share":0.75,"unkeyed":0}'
    assert_line --index 3 '{"pod":"pod-b","dp_rank":null,"distinct":3,"computed":3,"elsewhere":0,"share":0,"unkeyed":0}'
    assert_line --index 4 '{"pod":null,"dp_rank":null,"distinct":4,"computed":11,"elsewhere":5,"share":0.45454545454545453,"unkeyed":1}'
    # At the end (1,2) is held by a/0 and a/1; (1,2,3,4) and (1,2,3,4,5,6)
    # by b.  At 100.25 (1,2) had three holders; after the removal at 104,
    # (1,2,3,4) [a/1], (1,2,3,4,7,8) and (1,2,3,4,5,6) had one each.
    run --separate-stderr kvstat sharing --holders "$D/a.ndjson" "$D/b.ndjson"
    assert_success
    assert_output '{"holders":1,"blocks_end":2,"blocks_peak":3}
{"holders":2,"blocks_end":1,"blocks_peak":1}
{"holders":3,"blocks_end":0,"blocks_peak":1}
{"holders":4,"blocks_end":0,"blocks_peak":0}'
}

@test "route matches the model on the crafted capture" {
    same_as_model route
    same_as_model route --capacity 1 --random-seed 7
}

# A capture where prefix-aware routing must win: two system prompts P
# (tokens 1 2) and Q (3 4), each sent to both pods by the real router.
route_capture() {
    cat >"$D/rb.ndjson" <<'EOF'
{"pod":"b","dp_rank":0,"seq":0,"ts":2,"type":"BlockStored","block_hashes":["201","202","203"],"parent_block_hash":null,"token_ids":[1,2,11],"block_size":1}
{"pod":"b","dp_rank":0,"seq":1,"ts":4,"type":"BlockStored","block_hashes":["204","205","206"],"parent_block_hash":null,"token_ids":[3,4,21],"block_size":1}
EOF
    cat >"$D/ra.ndjson" <<'EOF'
{"pod":"a","dp_rank":0,"seq":0,"ts":1,"type":"BlockStored","block_hashes":["101","102","103"],"parent_block_hash":null,"token_ids":[1,2,10],"block_size":1}
{"pod":"a","dp_rank":0,"seq":1,"ts":3,"type":"BlockStored","block_hashes":["104","105","106"],"parent_block_hash":null,"token_ids":[3,4,20],"block_size":1}
{"pod":"a","dp_rank":0,"seq":2,"ts":5,"type":"BlockStored","block_hashes":["107"],"parent_block_hash":"102","token_ids":[12],"block_size":1}
{"pod":"a","dp_rank":0,"seq":3,"ts":6,"type":"BlockStored","block_hashes":["108"],"parent_block_hash":"105","token_ids":[22],"block_size":1}
EOF
}

@test "route: longest-prefix routing wins where it must (numbers by hand)" {
    route_capture
    run --separate-stderr kvstat route --capacity 0 "$D/rb.ndjson" "$D/ra.ndjson"
    assert_success
    # 6 requests of 3 blocks.  The capture: only the last two found their
    # prompt (2 blocks each).  Longest prefix: a gets P, b gets Q, every
    # request after the first of its prompt hits 2.  Round robin alternates
    # a, b, a, b, a, b: P lands on both pods, Q on both, 2 + 2 hits.
    assert_line --index 0 '{"policy":"capture","requests":6,"blocks":18,"hits":4,"hit_rate":0.2222222222222222,"computed":14}'
    assert_line --index 1 '{"policy":"capture_lru","requests":6,"blocks":18,"hits":4,"hit_rate":0.2222222222222222,"computed":14}'
    assert_line --index 2 '{"policy":"longest_prefix","requests":6,"blocks":18,"hits":8,"hit_rate":0.4444444444444444,"computed":10}'
    assert_line --index 3 '{"policy":"round_robin","requests":6,"blocks":18,"hits":4,"hit_rate":0.2222222222222222,"computed":14}'
    [ "${#lines[@]}" -eq 5 ]
    "$PY" "$MODEL" route --capacity 0 "$D/rb.ndjson" "$D/ra.ndjson" >"$D/want"
    diff -u "$D/want" <(printf '%s\n' "$output")
}

@test "route: -H and --tsv print the same rows" {
    route_capture
    run kvstat route -H --capacity 0 "$D/ra.ndjson" "$D/rb.ndjson"
    assert_success
    assert_line --index 0 'policy          requests  blocks  hits  hit_rate  computed'
    assert_line --index 3 'longest_prefix         6      18     8    0.4444        10'
    run kvstat route --tsv --capacity 0 "$D/ra.ndjson" "$D/rb.ndjson"
    assert_success
    assert_line --index 0 "$(printf 'policy\trequests\tblocks\thits\thit_rate\tcomputed')"
    assert_line --index 3 "$(printf 'longest_prefix\t6\t18\t8\t0.4444444444444444\t10')"
}

@test "stdin is read when there is no file, and '-' names it" {
    run --separate-stderr kvstat summary --tsv <"$D/a.ndjson"
    assert_success
    assert_line --index 0 "$(printf 'pod\tdp_rank\tevents\tstored_events\tremoved_events\tcleared\tblocks_stored\tblocks_removed\tunknown_removed\torphans\tpeak_blocks\tfinal_blocks\tts_first\tts_last\tevents_per_s\tgaps\tlost_seqs\trestarts\tdecode_errors\tskipped\tts_backwards')"
    assert_line --index 1 "$(printf 'pod-a\t\t1\t0\t0\t0\t0\t0\t0\t0\t0\t0\t\t\t\t0\t0\t0\t1\t0\t0')"
    run --separate-stderr kvstat summary - "$D/b.ndjson" <"$D/a.ndjson"
    assert_success
    [ "${#lines[@]}" -eq 4 ]
}

@test "usage errors exit 2 with a hint" {
    run --separate-stderr kvstat frobnicate
    [ "$status" -eq 2 ]
    [ "$stderr" = "kvstat: 'frobnicate' is not a command (summary, rate, lifetime, sharing, route or top)
Try 'kvstat --help'." ]
    run --separate-stderr kvstat rate --every 0s
    [ "$status" -eq 2 ]
    [ "$stderr" = "kvstat: --every: '0s' is out of range (1ms..168h)
Try 'kvstat --help'." ]
    run --separate-stderr kvstat summary --every 5s
    [ "$status" -eq 2 ]
    [ "${stderr%%$'\n'*}" = "kvstat: --every: only for rate, not summary" ]
    run --separate-stderr kvstat rate --plot out.gif
    [ "$status" -eq 2 ]
    [ "${stderr%%$'\n'*}" = "kvstat: --plot: 'out.gif' does not end in .png or .svg" ]
    run --separate-stderr kvstat
    [ "$status" -eq 2 ]
}

@test "a missing file exits 1; an unknown format version exits 1" {
    run --separate-stderr kvstat summary "$D/nope.ndjson"
    [ "$status" -eq 1 ]
    [ "$stderr" = "kvstat: error: $D/nope.ndjson: No such file or directory" ]
    printf '{"type":"format","version":2}\n' >"$D/v2.ndjson"
    run --separate-stderr kvstat summary "$D/v2.ndjson"
    [ "$status" -eq 1 ]
    [[ "$stderr" == "kvstat: error: $D/v2.ndjson:1: "* ]]
}

@test "a closed pipe ends kvstat quietly" {
    for i in $(seq 1 3000); do
        printf '{"pod":"p%d","seq":0,"ts":1,"type":"AllBlocksCleared"}\n' "$i"
    done >"$D/many.ndjson"
    run --separate-stderr bash -c "kvstat summary '$D/many.ndjson' | head -1"
    assert_success
    [ "$stderr" = "" ]
}

@test "nothing on stderr when it is not a terminal (no progress)" {
    run --separate-stderr kvstat summary "$D/a.ndjson"
    assert_success
    [ "$stderr" = "" ]
}

@test "the man page renders cleanly and documents every --help option" {
    local m="$KVTAP_TOP/man/kvstat.1"
    run groff -mdoc -ww -z -Tutf8 "$m"
    assert_success
    assert_output ''
    for s in SYNOPSIS DESCRIPTION OUTPUT 'EXIT STATUS' EXAMPLES; do
        grep -qx ".Sh $s" "$m"
    done
    for o in $(kvstat --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
        grep -q -- "${o#--}" "$m" || {
            echo "$o is in --help but not in $m"
            return 1
        }
    done
}

# is_png FILE: the PNG signature and an IHDR chunk of nonzero size.
is_png() {
    "$PY" - "$1" <<'EOF'
import struct, sys
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"\x89PNG\r\n\x1a\n", "no PNG signature"
assert b[12:16] == b"IHDR", "no IHDR chunk"
w, h = struct.unpack(">II", b[16:24])
assert w > 100 and h > 100, (w, h)
EOF
}

@test "--plot draws a PNG for rate, lifetime, route and an SVG for sharing" {
    cd "$D"
    run --separate-stderr kvstat rate --every 10s --plot rate.png a.ndjson b.ndjson
    assert_success
    is_png rate.png
    # The rows are printed as without --plot.
    "$PY" "$MODEL" rate --every 10s a.ndjson b.ndjson >want
    diff -u want <(printf '%s\n' "$output")
    run --separate-stderr kvstat lifetime --plot "$D/life.png" a.ndjson b.ndjson
    assert_success
    is_png life.png
    run --separate-stderr kvstat route --plot route.png a.ndjson b.ndjson
    assert_success
    is_png route.png
    run --separate-stderr kvstat sharing --holders --plot share.svg a.ndjson b.ndjson
    assert_success
    grep -q '<svg' share.svg
    grep -q 'keys held by N pods' share.svg
    ! ls "${TMPDIR:-/tmp}"/kvstat.* 2>/dev/null | grep -q .
}

@test "--plot without gnuplot fails with exit 1 and says what to install" {
    mkdir "$D/nobin"
    ln -s "$(command -v kvstat)" "$D/nobin/kvstat"
    run --separate-stderr env PATH="$D/nobin" kvstat rate --plot "$D/r.png" "$D/a.ndjson"
    [ "$status" -eq 1 ]
    [ "$stderr" = "kvstat: error: --plot: cannot run gnuplot (install gnuplot-nox)" ]
    [ ! -e "$D/r.png" ]
}

@test "summary has no figure: --plot is a usage error" {
    run --separate-stderr kvstat summary --plot "$D/s.png" "$D/a.ndjson"
    [ "$status" -eq 2 ]
    [ "${stderr%%$'\n'*}" = "kvstat: --plot: summary has no figure (rate, lifetime, sharing and route do)" ]
}

@test "progress on stderr when it is a terminal, erased before the answer" {
    # script(1) gives kvstat a terminal; the pause makes the reading last
    # longer than one refresh (200 ms).
    run script -qec "(cat '$D/a.ndjson'; sleep 1; cat '$D/b.ndjson') | kvstat summary > '$D/out'" "$D/typescript"
    assert_success
    tr '\r' '\n' <"$D/typescript" >"$D/screen"
    grep -qE '^.\[Kkvstat: [0-9.]+ (B|KiB)  [0-9]+ events  [0-9]+ events/s$' "$D/screen"
    # The status line is erased before anything else is written.
    grep -qaF $'events/s\r\e[K' "$D/typescript"
    [ "$(wc -l <"$D/out")" -eq 4 ]
}

# top_pane CMD: runs CMD in a detached tmux session of its own, 100x20.
top_pane() {
    TMUX_SOCK="$D/tmux.sock"
    tmux -S "$TMUX_SOCK" new-session -d -x 100 -y 20 -s top "$1"
}

# screen_has TEXT [SECONDS]: waits until the pane shows TEXT.
screen_has() {
    local i=0
    while ! tmux -S "$TMUX_SOCK" capture-pane -p -t top | grep -qF -- "$1"; do
        sleep 0.1
        i=$((i + 1))
        if [ "$i" -ge $((${2:-5} * 10)) ]; then
            tmux -S "$TMUX_SOCK" capture-pane -p -t top
            return 1
        fi
    done
}

@test "top redraws every second as events arrive, as a person sees it (tmux)" {
    mkfifo "$D/feed"
    top_pane "kvstat top < '$D/feed'; echo EXITED \$?; sleep 30"
    exec 7>"$D/feed"
    head -n 3 "$D/a.ndjson" >&7
    screen_has 'kvstat top: 1 streams, 3 events, 0 bad lines; Ctrl-C quits'
    screen_has 'pod-a        0       3'
    # More events, a new stream: the next screen shows them.
    cat "$D/b.ndjson" >&7
    screen_has 'kvstat top: 2 streams, 7 events, 1 bad lines; Ctrl-C quits'
    tmux -S "$TMUX_SOCK" capture-pane -p -t top >"$D/screen"
    grep -qE '^pod +dp_rank +events +events/s +occupancy +peak +gaps +restarts +last_seen$' "$D/screen"
    grep -qE '^pod-b +- +4 +[0-9]+ +2 +2 +0 +0 +[0-9]+s ago$' "$D/screen"
    # The end of the input: a last screen, exit 0.
    exec 7>&-
    screen_has 'input ended'
    screen_has 'EXITED 0'
    tmux -S "$TMUX_SOCK" kill-server
}

@test "top stops on Ctrl-C with status 130" {
    mkfifo "$D/feed"
    # The shell traps SIGINT so that it lives on to print the status (its
    # child gets the default action back).
    top_pane "trap 'echo INT' INT; kvstat top < '$D/feed'; echo EXITED \$?; sleep 30"
    exec 7>"$D/feed"
    cat "$D/a.ndjson" >&7
    screen_has 'pod-a        1'
    tmux -S "$TMUX_SOCK" send-keys -t top C-c
    screen_has 'EXITED 130'
    exec 7>&-
    tmux -S "$TMUX_SOCK" kill-server
}

@test "SIGINT while reading a pipe: the answer so far, then status 130" {
    mkfifo "$D/feed"
    kvstat summary <"$D/feed" >"$D/out" 2>"$D/err" &
    pid=$!
    exec 7>"$D/feed"
    head -n 3 "$D/a.ndjson" >&7
    sleep 0.5
    kill -INT "$pid"
    # Not under run: its subshell could not wait for this shell's child.
    st=0
    wait_pid "$pid" 5 || st=$?
    [ "$st" -eq 130 ]
    exec 7>&-
    "$PY" "$MODEL" summary <(head -n 3 "$D/a.ndjson") >"$D/want"
    diff -u "$D/want" "$D/out"
    [ ! -s "$D/err" ]
}

@test "a generated capture of 3000 events: every command matches the model" {
    # Engine-like chains and removals over 16 pods (bench/kvindex_gen.py);
    # --capacity 50 makes the route simulation evict.
    "$PY" "$KVTAP_TOP/bench/kvindex_gen.py" ingest "$D/gen.ndjson" 3000
    for args in summary "rate --every 1s" lifetime "lifetime --hist" sharing \
        "sharing --holders" route "route --capacity 50"; do
        # shellcheck disable=SC2086
        "$PY" "$MODEL" $args "$D/gen.ndjson" >"$D/want"
        [ -s "$D/want" ]
        # shellcheck disable=SC2086
        kvstat $args "$D/gen.ndjson" >"$D/got"
        diff -u "$D/want" "$D/got" || {
            echo "kvstat $args differs from the model"
            return 1
        }
    done
}

@test "route --requests: real prompts instead of the capture's chains" {
    route_capture
    printf '%s\n' '[1,2,10]' '[1,2,11]' '[3,4,20]' '[3,4,21]' '[1,2,12]' \
        '[3,4,22]' '{"token_ids":[5]}' '' '[]' >"$D/req.jsonl"
    run --separate-stderr kvstat route --capacity 0 --requests "$D/req.jsonl" \
        "$D/ra.ndjson" "$D/rb.ndjson"
    assert_success
    # 7 prompts (the empty one has no block), 19 blocks, block size 1 from
    # the capture.  Longest prefix puts P on a and Q on b: 2 hits for each
    # prompt after the first of its kind; round robin only for the last P
    # and the last Q.  No capture rows: a prompt has no pod of the capture.
    assert_line --index 0 '{"policy":"longest_prefix","requests":7,"blocks":19,"hits":8,"hit_rate":0.42105263157894735,"computed":11}'
    assert_line --index 1 '{"policy":"round_robin","requests":7,"blocks":19,"hits":4,"hit_rate":0.21052631578947367,"computed":15}'
    [ "${#lines[@]}" -eq 3 ]
    "$PY" "$MODEL" route --capacity 0 --requests "$D/req.jsonl" \
        "$D/ra.ndjson" "$D/rb.ndjson" >"$D/want"
    diff -u "$D/want" <(printf '%s\n' "$output")
    # With blocks of 2 tokens, [1,2,10] is one block and [5] none.
    run --separate-stderr kvstat route --capacity 0 --block-size 2 \
        --requests "$D/req.jsonl" "$D/ra.ndjson" "$D/rb.ndjson"
    assert_success
    assert_line --index 0 '{"policy":"longest_prefix","requests":6,"blocks":6,"hits":4,"hit_rate":0.6666666666666666,"computed":2}'
}

@test "route --requests: a bad line exits 1, misuse exits 2" {
    route_capture
    printf '[1,2]\n[1,"x"]\n' >"$D/bad.jsonl"
    run --separate-stderr kvstat route --requests "$D/bad.jsonl" "$D/ra.ndjson"
    [ "$status" -eq 1 ]
    [ "$stderr" = "kvstat: error: --requests: $D/bad.jsonl:2: not a JSON array of token ids" ]
    run --separate-stderr kvstat sharing --requests "$D/bad.jsonl" "$D/ra.ndjson"
    [ "$status" -eq 2 ]
    [ "${stderr%%$'\n'*}" = "kvstat: --requests: only for route, not sharing" ]
    run --separate-stderr kvstat route --block-size 2 "$D/ra.ndjson"
    [ "$status" -eq 2 ]
    [ "${stderr%%$'\n'*}" = "kvstat: --block-size: only with route --requests" ]
}

@test "sharing gives the same answers under every key scheme" {
    # Equal keys mean equal prefixes whatever the hash: only the values
    # differ, never which blocks are shared.
    kvstat sharing "$D/a.ndjson" "$D/b.ndjson" >"$D/aibrix" 2>/dev/null
    [ -s "$D/aibrix" ]
    for h in "dynamo" "llmd -m some-model --hash-seed 7" "aibrix --seed 9"; do
        # shellcheck disable=SC2086
        kvstat sharing --hash $h "$D/a.ndjson" "$D/b.ndjson" 2>/dev/null |
            diff -u "$D/aibrix" -
    done
}

@test "a gap or restart without dp_rank applies to every rank of its pod" {
    cat >"$D/nr.ndjson" <<'EOF'
{"pod":"p","dp_rank":0,"seq":0,"ts":1,"type":"BlockStored","block_hashes":["1"],"parent_block_hash":null,"token_ids":[1],"block_size":1}
{"pod":"p","dp_rank":1,"seq":0,"ts":1,"type":"BlockStored","block_hashes":["2"],"parent_block_hash":null,"token_ids":[2],"block_size":1}
{"pod":"p","dp_rank":null,"seq":5,"ts":2,"type":"gap","from":1,"to":4}
{"pod":"p","seq":6,"ts":3,"type":"restart","last_seq":4}
{"pod":"q","seq":0,"ts":4,"type":"restart","last_seq":9}
EOF
    run --separate-stderr kvstat summary --tsv "$D/nr.ndjson"
    assert_success
    # pod, dp_rank, events, final_blocks, gaps, lost_seqs, restarts: q has
    # no rank known, so its restart stays on (q, null).
    [ "$(printf '%s\n' "$output" | cut -f1-3,12,16-18)" = "$(printf '%s\n' \
        'pod	dp_rank	events	final_blocks	gaps	lost_seqs	restarts' \
        'p	0	3	0	1	4	1' \
        'p	1	3	0	1	4	1' \
        'q		1	0	0	0	1')" ]
    "$PY" "$MODEL" summary "$D/nr.ndjson" >"$D/want"
    diff -u "$D/want" <(kvstat summary "$D/nr.ndjson")
}
