#!/usr/bin/env bats
# kvindex: the daemon and its client, against real processes on a real Unix
# socket under $BATS_TEST_TMPDIR.

load helpers
load kvindex_helpers

setup() {
    S=$BATS_TEST_TMPDIR/kv.sock
    EV=$BATS_TEST_TMPDIR/ev.ndjson
    SRV=
    SRV2=
    # pod-a holds blocks [1..4] and [5..8]; pod-b holds [1..4]; block size 4.
    cat >"$EV" <<'NDJSON'
{"pod":"pod-a","dp_rank":0,"seq":41,"i":0,"ts":1700000000.25,"type":"BlockStored","block_hashes":["100","101"],"parent_block_hash":null,"token_ids":[1,2,3,4,5,6,7,8],"block_size":4,"lora_id":null,"medium":"GPU"}
{"pod":"pod-b","dp_rank":0,"seq":7,"i":0,"ts":1700000001,"type":"BlockStored","block_hashes":["200"],"parent_block_hash":null,"token_ids":[1,2,3,4],"block_size":4,"lora_id":null,"medium":"GPU"}
NDJSON
}

teardown() {
    for p in $SRV $SRV2; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    return 0
}

# Starts a server on $S with the given arguments and waits until it answers.
start() {
    kvindex serve -s "$S" "$@" 3>&- &
    SRV=$!
    kvindex ping -s "$S" -t 5s >/dev/null
}


@test "help: overall and every subcommand have OUTPUT/EXIT STATUS/EXAMPLES" {
    run kvindex --help
    assert_success
    assert_output --partial "Usage: kvindex serve"
    assert_output --partial "OUTPUT"
    assert_output --partial "EXIT STATUS"
    assert_output --partial "EXAMPLES"
    for c in serve query match keys stats pods dump ping; do
        run kvindex "$c" --help
        assert_success
        assert_output --partial "Usage: kvindex $c"
        assert_output --partial "OUTPUT"
        assert_output --partial "EXIT STATUS"
        assert_output --partial "EXAMPLES"
    done
    run kvindex -V
    assert_success
    assert_output --regexp '^kvindex [0-9.]+ \(libzmq'
}

@test "usage errors exit 2 with a hint" {
    run kvindex
    assert_failure 2
    run kvindex frobnicate
    assert_failure 2
    assert_output --partial "Try 'kvindex --help'."
    run kvindex serve --hash md5
    assert_failure 2
    assert_output --partial "--hash"
    run kvindex serve --snapshot-every soon
    assert_failure 2
    run kvindex ping --pods a
    assert_failure 2
    run kvindex query
    assert_failure 2
}

@test "ping, match, keys, lookup, pods, stats, dump, clear" {
    start -m llama "$EV"
    wait_lines 2
    run kvindex ping -s "$S"
    assert_success
    # The version is the Makefile's, the one place it is written.
    ver=$(sed -n 's/^VERSION *:= *//p' "$BATS_TEST_DIRNAME/../../Makefile")
    [ -n "$ver" ]
    assert_output '{"id":null,"ok":true,"data":{"version":"'"$ver"'"}}'

    run kvindex match -s "$S" -m llama '[1,2,3,4,5,6,7,8,9]'
    assert_success
    [ "$(echo "$output" | jq -c '.data.matches|map([.pod,.depth,.tokens,.percent])')" = '[["pod-a",2,8,100],["pod-b",1,4,50]]' ]
    [ "$(echo "$output" | jq -c '.data|[.block_size,.blocks]')" = '[4,2]' ]
    [ "$(echo "$output" | jq -c '.data.matches[0]|[.dp_rank,.media,.degraded]')" = '[0,["GPU"],false]' ]

    # --pods filters; tokens from stdin; a namespace nobody stored is an
    # error that says what the index knows (never an empty answer).
    run sh -c "echo '[1,2,3,4]' | kvindex match -r -s '$S' -m llama --pods pod-b"
    assert_success
    [ "$(echo "$output" | jq -c '.matches|map(.pod)')" = '["pod-b"]' ]
    run kvindex match -r -s "$S" -m llama --lora-name other '[1,2,3,4]'
    assert_failure 1
    assert_output 'kvindex: error: unknown LoRA "other" of model "llama"; it has blocks of no LoRA'

    run kvindex keys -r -s "$S" -m llama '[1,2,3,4,5,6,7,8]'
    assert_success
    keys=$output
    [ "$(echo "$keys" | jq '.keys|length')" = 2 ]
    # A match by keys agrees with a match by tokens.
    run kvindex query -r -s "$S" "{\"op\":\"match\",\"model\":\"llama\",\"keys\":$(echo "$keys" | jq -c .keys)}"
    assert_success
    [ "$(echo "$output" | jq -c '.matches|map([.pod,.depth])')" = '[["pod-a",2],["pod-b",1]]' ]
    # keys for a namespace without a block size yet takes block_size.
    run kvindex keys -r -s "$S" -m fresh --block-size 2 '[1,2,3,4]'
    assert_success
    [ "$(echo "$output" | jq '.keys|length')" = 2 ]

    run kvindex query -r -s "$S" '{"op":"lookup","block_hashes":["101","200","5"]}'
    assert_success
    [ "$(echo "$output" | jq -c '.hashes|map([.block_hash,(.pods|map(.pod))])')" = '[["101",["pod-a"]],["200",["pod-b"]],["5",[]]]' ]
    [ "$(echo "$output" | jq -r '.hashes[0].pods[0].key')" = "$(echo "$keys" | jq -r '.keys[1]')" ]

    run kvindex pods -r -s "$S"
    assert_success
    [ "$(echo "$output" | jq -c '.pods|map([.pod,.dp_rank,.blocks,.last_seq,.degraded])')" = '[["pod-a",0,2,41,false],["pod-b",0,1,7,false]]' ]

    run kvindex stats -r -s "$S"
    assert_success
    [ "$(echo "$output" | jq -c '[.namespaces,.keys,.entries,.pods,.events.BlockStored,.lines]')" = '[1,2,3,2,2,2]' ]
    [ "$(echo "$output" | jq '.queries.match >= 2')" = true ]

    run kvindex dump -s "$S"
    assert_success
    [ "$(echo "$output" | head -1 | jq -r .type)" = kvindex_snapshot ]
    [ "$(echo "$output" | grep -c '"type":"entry"')" = 3 ]
    run kvindex dump -s "$S" --pod pod-b
    assert_success
    [ "$(echo "$output" | grep -c '"type":"entry"')" = 1 ]

    run kvindex query -r -s "$S" '{"op":"clear","pod":"pod-a"}'
    assert_success
    assert_output '{"removed":2}'
    run kvindex match -r -s "$S" -m llama '[1,2,3,4,5,6,7,8]'
    [ "$(echo "$output" | jq -c '.matches|map([.pod,.depth])')" = '[["pod-b",1]]' ]
}

@test "id is echoed verbatim; ok:false exits 1 and names the problem" {
    start "$EV"
    run kvindex query -s "$S" '{"id":{"a":[1,"x"]},"op":"ping"}'
    assert_success
    assert_output --partial '{"id":{"a":[1,"x"]},"ok":true'
    run kvindex query -s "$S" '{"id":"req-7","op":"clear"}'
    assert_failure 1
    assert_output --partial '{"id":"req-7","ok":false,"error":"clear needs \"pod\""}'
    run kvindex query -s "$S" '{"id":12345678901234567890,"op":"nope"}'
    assert_failure 1
    assert_output --partial '"id":12345678901234567890,"ok":false'
    assert_output --partial 'unknown op'
}

@test "a bad request gets an error and the connection stays usable" {
    start "$EV"
    run sh -c "printf '%s\n' 'not json' '{\"op\":\"match\",\"tokens\":[1,-2]}' '' '{\"id\":3,\"op\":\"ping\"}' | kvindex query -s '$S' - 2>/dev/null"
    assert_failure 1
    [ "${#lines[@]}" -eq 3 ]
    [ "$(echo "${lines[0]}" | jq .ok)" = false ]
    [ "$(echo "${lines[1]}" | jq -r .error)" != null ]
    [ "$(echo "${lines[2]}" | jq -c '[.id,.ok]')" = '[3,true]' ]
    # Raw socat works too (one connection, several requests).
    run sh -c "printf '%s\n' '{\"op\":\"ping\",\"id\":1}' '{' '{\"op\":\"ping\",\"id\":2}' | socat -t 2 - UNIX-CONNECT:'$S'"
    assert_success
    [ "${#lines[@]}" -eq 3 ]
    [ "$(echo "${lines[2]}" | jq -c '[.id,.ok]')" = '[2,true]' ]
}

@test "many clients at once" {
    start -m llama "$EV"
    wait_lines 2
    pids=
    for i in $(seq 30); do
        kvindex match -r -s "$S" -m llama '[1,2,3,4]' >"$BATS_TEST_TMPDIR/c$i" 3>&- &
        pids="$pids $!"
    done
    for p in $pids; do
        wait "$p"
    done
    # Equal depth: pod-b holds fewer blocks (1 against 2), so it comes first.
    for i in $(seq 30); do
        [ "$(jq -c '.matches|map(.pod)' "$BATS_TEST_TMPDIR/c$i")" = '["pod-b","pod-a"]' ]
    done
}

@test "a client that stops reading stalls neither ingest nor other clients" {
    mkfifo "$BATS_TEST_TMPDIR/in"
    kvindex serve -s "$S" <"$BATS_TEST_TMPDIR/in" 3>&- &
    SRV=$!
    exec 4>"$BATS_TEST_TMPDIR/in"
    kvindex ping -s "$S" -t 5s
    cat "$EV" >&4
    wait_lines 2
    # Thousands of dumps requested, none of the replies read.
    "$PY" -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.setblocking(False)
req = b"{\"op\":\"dump\"}\n" * 20000
try:
    while req:
        n = s.send(req)
        req = req[n:]
except BlockingIOError:
    pass
time.sleep(30)
' "$S" 3>&- &
    SRV2=$!
    sleep 0.5
    # More input still goes in, and another client still gets answers.
    for i in $(seq 3 200); do
        echo "{\"pod\":\"pod-c\",\"seq\":$i,\"type\":\"AllBlocksCleared\"}"
    done >&4
    run wait_lines 200
    assert_success
    run kvindex ping -s "$S" -t 2s
    assert_success
    run kvindex stats -r -s "$S"
    [ "$(echo "$output" | jq .events.AllBlocksCleared)" = 198 ]
    exec 4>&-
}

@test "a stale socket is replaced; a live one is refused as already running" {
    "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
' "$S"
    [ -S "$S" ]
    start "$EV"
    run kvindex ping -s "$S"
    assert_success
    run kvindex serve -s "$S" "$EV"
    assert_failure 1
    assert_output --partial "already running"
    # The first server still owns the path.
    run kvindex ping -s "$S"
    assert_success
}

@test "a path that is not a socket is refused and left alone" {
    echo keep >"$S"
    run kvindex serve -s "$S" "$EV"
    assert_failure 1
    assert_output --partial "not a socket"
    [ "$(cat "$S")" = keep ]
}

@test "socket mode is 0600 whatever the umask; --socket-mode widens it" {
    old=$(umask)
    umask 000
    kvindex serve -s "$S" "$EV" 3>&- &
    SRV=$!
    umask "$old"
    kvindex ping -s "$S" -t 5s
    [ "$(stat -c %a "$S")" = 600 ]
    kill "$SRV"
    wait_pid "$SRV" || true
    SRV=
    [ ! -e "$S" ]
    start --socket-mode 0660 "$EV"
    [ "$(stat -c %a "$S")" = 660 ]
    run kvindex serve -s "$S.x" --socket-mode 999
    assert_failure 2
}

@test "default path: KVINDEX_SOCKET, then XDG_RUNTIME_DIR; -s wins" {
    mkdir -m 700 "$BATS_TEST_TMPDIR/xdg"
    XDG_RUNTIME_DIR=$BATS_TEST_TMPDIR/xdg kvindex serve "$EV" 3>&- &
    SRV=$!
    run kvindex ping -s "$BATS_TEST_TMPDIR/xdg/kvindex.sock" -t 5s
    assert_success
    KVINDEX_SOCKET=$BATS_TEST_TMPDIR/xdg/kvindex.sock run kvindex ping
    assert_success
    KVINDEX_SOCKET=$BATS_TEST_TMPDIR/nowhere.sock run kvindex ping -s "$BATS_TEST_TMPDIR/xdg/kvindex.sock"
    assert_success
    KVINDEX_SOCKET=$BATS_TEST_TMPDIR/nowhere.sock run kvindex ping
    assert_failure 1
}

@test "SIGTERM: exit 0, socket unlinked, snapshot written" {
    start --snapshot "$BATS_TEST_TMPDIR/snap" --snapshot-every 1h "$EV"
    wait_lines 2
    kill -TERM "$SRV"
    rc=0
    wait_pid "$SRV" || rc=$?
    SRV=
    [ "$rc" -eq 0 ]
    [ ! -e "$S" ]
    [ "$(head -1 "$BATS_TEST_TMPDIR/snap" | jq -r .type)" = kvindex_snapshot ]
    [ "$(grep -c '"type":"entry"' "$BATS_TEST_TMPDIR/snap")" = 3 ]
    [ -z "$(ls "$BATS_TEST_TMPDIR" | grep 'snap.tmp')" ]
}

@test "snapshot restore after kill -9 answers the same" {
    SN=$BATS_TEST_TMPDIR/snap
    start -m llama --snapshot "$SN" --snapshot-every 100ms "$EV"
    wait_lines 2
    # A gap marks pod-b degraded; that survives the restart too.
    before=$(kvindex match -r -s "$S" -m llama '[1,2,3,4,5,6,7,8]')
    pods_before=$(kvindex pods -r -s "$S" | jq -c '.pods|map([.pod,.blocks,.last_seq])')
    for i in $(seq 50); do
        grep -q '"block_hash":"200"' "$SN" 2>/dev/null && break
        sleep 0.05
    done
    sleep 0.3
    kill -9 "$SRV"
    wait "$SRV" 2>/dev/null || true
    SRV=
    [ -S "$S" ] # a kill -9 leaves the socket behind: the restart replaces it
    start -m llama --snapshot "$SN" </dev/null
    after=$(kvindex match -r -s "$S" -m llama '[1,2,3,4,5,6,7,8]')
    [ "$before" = "$after" ]
    [ "$(kvindex pods -r -s "$S" | jq -c '.pods|map([.pod,.blocks,.last_seq])')" = "$pods_before" ]
}

@test "a snapshot of another hash scheme or a corrupt one is refused" {
    SN=$BATS_TEST_TMPDIR/snap
    start --snapshot "$SN" "$EV"
    wait_lines 2
    kill "$SRV"
    wait_pid "$SRV"
    SRV=
    run kvindex serve -s "$S" --hash dynamo --snapshot "$SN" </dev/null
    assert_failure 1
    assert_output --partial "another --hash"
    echo '{"type":"entry"' >"$BATS_TEST_TMPDIR/bad"
    run kvindex serve -s "$S" --snapshot "$BATS_TEST_TMPDIR/bad" </dev/null
    assert_failure 1
    assert_output --partial "line 1"
}

@test "--max-line: long input lines and long requests are skipped and counted" {
    {
        cat "$EV"
        printf '{"pod":"x","type":"gap","pad":"%0400d"}\n' 0
        echo '{"pod":"pod-c","seq":1,"type":"AllBlocksCleared"}'
    } >"$BATS_TEST_TMPDIR/long.ndjson"
    start --max-line 300 "$BATS_TEST_TMPDIR/long.ndjson"
    wait_lines 4
    run kvindex stats -r -s "$S"
    [ "$(echo "$output" | jq -c '[.long_lines,.events.BlockStored,.events.AllBlocksCleared,.events.gap]')" = '[1,2,1,0]' ]
    long=$(printf '{"op":"ping","pad":"%0400d"}' 0)
    run sh -c "printf '%s\n' '$long' '{\"id\":2,\"op\":\"ping\"}' | kvindex query -s '$S' - 2>/dev/null"
    assert_failure 1
    [ "${#lines[@]}" -eq 2 ]
    assert_output --partial "longer than --max-line"
    [ "$(echo "${lines[1]}" | jq -c '[.id,.ok]')" = '[2,true]' ]
}

@test "a bad input line is reported with its line number and counted" {
    {
        head -1 "$EV"
        echo 'this is not json'
        tail -1 "$EV"
    } >"$BATS_TEST_TMPDIR/bad.ndjson"
    run kvindex serve -s "$S" --exit-on-eof --stats "$BATS_TEST_TMPDIR/bad.ndjson"
    assert_success
    assert_output --partial "bad.ndjson:2:"
    stats=$(echo "$output" | grep '^{')
    [ "$(echo "$stats" | jq -c '[.lines,.bad_lines,.events.BlockStored]')" = '[3,1,2]' ]
}

@test "--exit-on-eof: reads stdin and files in order, exits 0, unlinks" {
    run sh -c "kvindex serve -s '$S' -m llama --exit-on-eof --stats '$EV' - < '$EV'"
    assert_success
    [ ! -e "$S" ]
    [ "$(echo "$output" | jq -c '[.lines,.events.BlockStored,.entries]')" = '[4,4,3]' ]
}

@test "ping -t waits for a server that starts later; without one it fails" {
    run kvindex ping -s "$S" -t 200ms
    assert_failure 1
    (sleep 0.5 && exec kvindex serve -s "$S" "$EV" 3>&-) 3>&- &
    SRV=$!
    run kvindex ping -s "$S" -t 10s
    assert_success
}

@test "stats --prom is Prometheus text" {
    start -m llama "$EV"
    wait_lines 2
    run kvindex stats -s "$S" --prom
    assert_success
    while IFS= read -r l; do
        [[ "$l" =~ ^#\ (HELP|TYPE)\ kvindex_[a-z_]+\ .+$ ]] ||
            [[ "$l" =~ ^kvindex_[a-z_]+(\{[a-z_]+=\"[A-Za-z0-9_-]*\"(,[a-z_]+=\"[A-Za-z0-9_-]*\")*\})?\ [0-9.e+-]+$ ]] ||
            { echo "bad line: $l"; false; }
    done <<<"$output"
    assert_output --partial 'kvindex_events_applied_total{type="BlockStored"} 2'
    assert_output --partial 'kvindex_entries 3'
    assert_output --partial '# TYPE kvindex_queries_total counter'
    # Values are the shortest exact decimals (uptime 0.097, never the
    # 0.097000000000000003 that %.17g prints).
    refute_line --regexp ' [0-9]*\.[0-9]{12,}$'
}

@test "SIGUSR1 prints the stats line without stopping" {
    kvindex serve -s "$S" -m llama "$EV" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
    SRV=$!
    kvindex ping -s "$S" -t 5s
    wait_lines 2
    kill -USR1 "$SRV"
    wait_file "$BATS_TEST_TMPDIR/err"
    [ "$(jq -c '[.lines,.entries]' "$BATS_TEST_TMPDIR/err")" = '[2,3]' ]
    run kvindex ping -s "$S"
    assert_success
}

@test "the examples of --help work" {
    export KVINDEX_SOCKET=$S
    cd "$BATS_TEST_TMPDIR"
    cp "$EV" capture.ndjson
    run kvindex serve --exit-on-eof --stats capture.ndjson
    assert_success
    kvindex serve -m llama <capture.ndjson 3>&- &
    SRV=$!
    run sh -c 'kvindex ping -s "$KVINDEX_SOCKET" -t 10s && echo ready'
    assert_line ready
    wait_lines 2
    run sh -c "echo '[1,2,3,4,5,6,7,8]' | kvindex match -m llama"
    assert_success
    run kvindex match -r -m llama --pods pod-a,pod-b '[1,2,3,4]'
    assert_success
    run kvindex query '{"op":"pods"}'
    assert_success
    run sh -c "printf '%s\n' '{\"id\":1,\"op\":\"ping\"}' | kvindex query -"
    assert_success
    run sh -c "kvindex keys -m llama --block-size 16 \"\$(seq -s, 0 31 | sed 's/.*/[&]/')\""
    assert_success
    run sh -c "kvindex pods -r | jq '.pods[] | select(.degraded)'"
    assert_success
    run sh -c 'kvindex dump > index.ndjson && test -s index.ndjson'
    assert_success
    run sh -c "kvindex dump --pod pod-a | grep -c '\"type\":\"entry\"'"
    assert_output 2
    run sh -c 'kvindex stats --prom > kvindex.prom && grep -q kvindex_keys kvindex.prom'
    assert_success
}

@test "differential: match agrees with an independent Python model" {
    run "$PY" "$KVTAP_TOP/tests/peer/refindex.py" selftest
    assert_success
    for seed in 11 12 13; do
        run "$PY" "$KVTAP_TOP/tests/peer/refindex.py" diff "$(command -v kvindex)" "$BATS_TEST_TMPDIR" --seed "$seed" --events 3000 --queries 500
        echo "$output"
        assert_success
        assert_output --partial " 0 mismatches"
    done
}

@test "--hash, --seed, --hash-seed: keys are the spec's test vectors" {
    t=$(seq -s, 0 31 | sed 's/.*/[&]/')
    start --seed 12345 </dev/null
    run kvindex keys -r -s "$S" -m m --block-size 16 "$t"
    assert_output '{"keys":["826599923864855889","9446283537318736241"]}'
    kill "$SRV"
    wait_pid "$SRV"
    start --hash dynamo </dev/null
    run kvindex keys -r -s "$S" -m m --block-size 16 "$t"
    assert_output '{"keys":["15310707395893867146","13769157705258532664"]}'
    kill "$SRV"
    wait_pid "$SRV"
    start --hash llmd --hash-seed 42 </dev/null
    run kvindex keys -r -s "$S" -m test-model --block-size 16 "$t"
    assert_output '{"keys":["5773668644506991617","15857176180198655025"]}'
}

@test "gap marks a pod degraded until restart; lora_id names a namespace" {
    {
        cat "$EV"
        echo '{"pod":"pod-b","dp_rank":0,"seq":9,"type":"gap","from":8,"to":8}'
        echo '{"pod":"pod-c","dp_rank":null,"seq":1,"type":"BlockStored","block_hashes":["9"],"parent_block_hash":null,"token_ids":[1,2,3,4],"block_size":4,"lora_id":7,"medium":"CPU"}'
    } >"$BATS_TEST_TMPDIR/g.ndjson"
    mkfifo "$BATS_TEST_TMPDIR/in"
    kvindex serve -s "$S" -m llama "$BATS_TEST_TMPDIR/g.ndjson" - <"$BATS_TEST_TMPDIR/in" 3>&- &
    SRV=$!
    exec 4>"$BATS_TEST_TMPDIR/in"
    kvindex ping -s "$S" -t 5s
    wait_lines 4
    run kvindex match -r -s "$S" -m llama '[1,2,3,4]'
    [ "$(echo "$output" | jq -c '.matches|map([.pod,.degraded])')" = '[["pod-b",true],["pod-a",false]]' ]
    run kvindex match -r -s "$S" -m llama --lora-name 7 '[1,2,3,4]'
    [ "$(echo "$output" | jq -c '.matches|map([.pod,.dp_rank,.media])')" = '[["pod-c",null,["CPU"]]]' ]
    echo '{"pod":"pod-b","dp_rank":0,"seq":1,"type":"restart","last_seq":9}' >&4
    wait_lines 5
    run kvindex match -r -s "$S" -m llama '[1,2,3,4]'
    [ "$(echo "$output" | jq -c '.matches|map([.pod,.degraded])')" = '[["pod-a",false]]' ]
    run kvindex pods -r -s "$S"
    [ "$(echo "$output" | jq -c '.pods|map([.pod,.blocks,.degraded])')" = '[["pod-a",2,false],["pod-b",0,false],["pod-c",1,false]]' ]
    exec 4>&-
}

@test "requests: escapes, pod objects, hex keys, bad token values" {
    printf '%s\n' '{"pod":"p\"\u00e9","dp_rank":1,"seq":1,"type":"BlockStored","block_hashes":["5"],"parent_block_hash":null,"token_ids":[1,2,3,4],"block_size":4,"lora_id":null,"medium":"GPU"}' >>"$EV"
    start -m llama "$EV"
    wait_lines 3
    run kvindex query -r -s "$S" '{"op":"match","model":"ll\u0061ma","tokens":[1,2,3,4]}'
    assert_success
    [ "$(echo "$output" | jq -c '.matches|map(.pod)')" = '["p\"é","pod-b","pod-a"]' ]
    run kvindex query -r -s "$S" '{"op":"match","model":"llama","tokens":[1,2,3,4],"pods":[{"pod":"p\"é","dp_rank":1},{"pod":"pod-a","dp_rank":5}]}'
    [ "$(echo "$output" | jq -c '.matches|map(.pod)')" = '["p\"é"]' ]
    key=$(kvindex keys -r -s "$S" -m llama '[1,2,3,4]' | jq -r '.keys[0]')
    hex=$(printf '0x%x' "$key")
    run kvindex query -r -s "$S" "{\"op\":\"match\",\"model\":\"llama\",\"keys\":[\"$hex\"]}"
    [ "$(echo "$output" | jq '.matches|length')" = 3 ]
    for bad in '[4294967296]' '[-1]' '[1.5]' '[1,]' '["1"]' '{}'; do
        run kvindex match -s "$S" -m llama "$bad"
        assert_failure 1
        assert_output --partial "tokens"
    done
    run kvindex query -r -s "$S" '{"op":"clear","pod":"p\"é","dp_rank":0}'
    assert_output '{"removed":0}'
    run kvindex query -r -s "$S" '{"op":"clear","pod":"p\"é","dp_rank":1}'
    assert_output '{"removed":1}'
}

@test "--max-blocks evicts and counts" {
    start -m llama --max-blocks 2 "$EV"
    wait_lines 2
    run kvindex stats -r -s "$S"
    [ "$(echo "$output" | jq -c '[.entries,.max_blocks_dropped]')" = '[2,1]' ]
    # The old name is gone, so that no one reads it as BlockRemoved.
    [ "$(echo "$output" | jq 'has("evictions")')" = false ]
}

@test "queries are answered while a large input is still being read" {
    "$PY" -c '
import random
r = random.Random(5)
with open("'"$BATS_TEST_TMPDIR"'/big.ndjson", "w") as f:
    for i in range(200000):
        t = ",".join(str(r.randrange(32000)) for _ in range(16))
        f.write("{\"pod\":\"p%d\",\"seq\":%d,\"type\":\"BlockStored\",\"block_hashes\":[\"%d\"],\"parent_block_hash\":null,\"token_ids\":[%s],\"block_size\":16}\n" % (i % 8, i, i + 1, t))
'
    kvindex serve -s "$S" "$BATS_TEST_TMPDIR/big.ndjson" 3>&- &
    SRV=$!
    kvindex ping -s "$S" -t 10s
    first=$(kvindex stats -r -s "$S" | jq .lines)
    [ "$first" -lt 200000 ]
    wait_lines 200000 || wait_lines 200000
    [ "$(kvindex stats -r -s "$S" | jq .entries)" = 200000 ]
}

@test "out of descriptors: connections wait, the server recovers" {
    (ulimit -n 16 && exec kvindex serve -s "$S" "$EV" 2>"$BATS_TEST_TMPDIR/err" 3>&-) &
    SRV=$!
    kvindex ping -s "$S" -t 5s
    "$PY" -c '
import socket, sys, time
ss = []
for i in range(30):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    ss.append(s)
time.sleep(0.5)
' "$S"
    run kvindex ping -s "$S" -t 5s
    assert_success
    grep -q "Too many open files" "$BATS_TEST_TMPDIR/err"
}

@test "replies are valid JSON even when a request holds invalid UTF-8" {
    start "$EV"
    # The request of issue 13, and one whose error message quotes the bytes.
    printf '{"\xfe\xff":1,"op":"ping"}\n{"op":"\xfe\xff"}\n' |
        socat -t 2 - UNIX-CONNECT:"$S" >"$BATS_TEST_TMPDIR/reply"
    run "$PY" -c '
import json, sys
lines = open(sys.argv[1], "rb").read().split(b"\n")
assert lines[-1] == b"", lines
assert b"\xfe" not in b"".join(lines), lines
r = [json.loads(l.decode("utf-8")) for l in lines[:-1]]
print(json.dumps([[x["ok"], x.get("error")] for x in r]))
' "$BATS_TEST_TMPDIR/reply"
    assert_success
    assert_output '[[true, null], [false, "unknown op \"\ufffd\ufffd\""]]'
}

@test "a batched match answers each prompt as match does, in order" {
    start -m llama "$EV"
    want='{"results":['
    sep=
    for p in '[1,2,3,4,5,6,7,8]' '[9,9,9,9]' '[1,2,3,4,5]' '[]' '[1,2,3,4,5,6,7,8]'; do
        run kvindex match -r -s "$S" -m llama "$p"
        assert_success
        want="$want$sep$output"
        sep=,
    done
    want="$want]}"
    run kvindex query -r -s "$S" '{"op":"match","model":"llama","prompts":[[1,2,3,4,5,6,7,8],[9,9,9,9],[1,2,3,4,5],[],[1,2,3,4,5,6,7,8]]}'
    assert_success
    assert_output "$want"
    # The client sends one prompt per stdin line (blank ones skipped).
    run sh -c "printf '%s\n' '[1,2,3,4,5,6,7,8]' '[9,9,9,9]' '' '[1,2,3,4,5]' '[]' '[1,2,3,4,5,6,7,8]' | kvindex match --batch -r -s '$S' -m llama"
    assert_success
    assert_output "$want"
    run kvindex match --batch -s "$S" '[1]'
    assert_failure 2
    assert_output "kvindex: match: --batch reads its prompts from stdin
Try 'kvindex --help'."

    run kvindex query -s "$S" '{"id":1,"op":"match","model":"llama","prompts":[]}'
    assert_failure 1
    assert_output "kvindex: error: prompts: an empty list
{\"id\":1,\"ok\":false,\"error\":\"prompts: an empty list\"}"
    run kvindex query -s "$S" '{"id":2,"op":"match","model":"llama","prompts":[[1,2],[3,"x"]]}'
    assert_failure 1
    assert_output "kvindex: error: prompts: prompt 1: expected a non-negative integer
{\"id\":2,\"ok\":false,\"error\":\"prompts: prompt 1: expected a non-negative integer\"}"
    many=$(/usr/bin/python3 -c 'print(",".join(["[1]"] * 1025))')
    run kvindex query -s "$S" "{\"id\":3,\"op\":\"match\",\"model\":\"llama\",\"prompts\":[$many]}"
    assert_failure 1
    assert_output "kvindex: error: prompts: more than 1024 prompts
{\"id\":3,\"ok\":false,\"error\":\"prompts: more than 1024 prompts\"}"
    run kvindex query -s "$S" '{"id":4,"op":"match","model":"nope","prompts":[[1]]}'
    assert_failure 1
    assert_output "kvindex: error: unknown model \"nope\"; known models: \"llama\"
{\"id\":4,\"ok\":false,\"error\":\"unknown model \\\"nope\\\"; known models: \\\"llama\\\"\"}"
}
