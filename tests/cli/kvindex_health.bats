#!/usr/bin/env bats
# kvindex says what is wrong (issue 8, §4): unknown models are errors, lines
# without a model are warned about, pods with many orphaned stores are
# degraded, stats --prom has per-pod series, ties go to the least loaded pod.

load helpers
load kvindex_helpers

bats_require_minimum_version 1.5.0

setup() {
    S=$BATS_TEST_TMPDIR/kv.sock
    EV=$BATS_TEST_TMPDIR/ev.ndjson
    ERR=$BATS_TEST_TMPDIR/err
    SRV=
    # pod-a holds [1..4] and [5..8] of llama; pod-b holds [1..4] of llama and
    # [1..4] of llama+sql.
    cat >"$EV" <<'NDJSON'
{"pod":"pod-a","dp_rank":0,"model":"llama","seq":41,"ts":1700000000.25,"type":"BlockStored","block_hashes":["100","101"],"parent_block_hash":null,"token_ids":[1,2,3,4,5,6,7,8],"block_size":4,"lora_id":null,"medium":"GPU"}
{"pod":"pod-b","dp_rank":0,"model":"llama","seq":7,"ts":1700000001,"type":"BlockStored","block_hashes":["200"],"parent_block_hash":null,"token_ids":[1,2,3,4],"block_size":4,"lora_id":null,"medium":"GPU"}
{"pod":"pod-b","dp_rank":0,"model":"llama","seq":8,"ts":1700000001,"type":"BlockStored","block_hashes":["201"],"parent_block_hash":null,"token_ids":[1,2,3,4],"block_size":4,"lora_id":null,"lora_name":"sql","medium":"GPU"}
NDJSON
}

teardown() {
    if [ -n "$SRV" ]; then
        kill "$SRV" 2>/dev/null
        wait "$SRV" 2>/dev/null
    fi
    return 0
}

# Starts a server on $S (stderr to $ERR) and waits until it answers.
start() {
    kvindex serve -s "$S" "$@" 2>"$ERR" 3>&- &
    SRV=$!
    kvindex ping -s "$S" -t 5s >/dev/null
}

# An orphaned store of pod $1 (its parent was never seen), seq $2.
orphan() {
    echo '{"pod":"'"$1"'","dp_rank":0,"model":"llama","seq":'"$2"',"type":"BlockStored","block_hashes":["9'"$2"'"],"parent_block_hash":"777","token_ids":[9,9,9,9],"block_size":4,"lora_id":null,"medium":"GPU"}'
}

@test "match, keys and lookup of a model or LoRA never seen: ok:false listing what is known" {
    start "$EV"
    wait_lines 3
    run --separate-stderr kvindex match -s "$S" -m nope '[1,2,3,4]'
    assert_failure 1
    [ "$stderr" = 'kvindex: error: unknown model "nope"; known models: "llama"' ]
    [ "$output" = "" ]
    run --separate-stderr kvindex match -s "$S" -m llama --lora-name sqll '[1,2,3,4]'
    assert_failure 1
    [ "$stderr" = 'kvindex: error: unknown LoRA "sqll" of model "llama"; its LoRAs: "sql"' ]
    run --separate-stderr kvindex keys -s "$S" -m nope '[1,2,3,4]'
    assert_failure 1
    [ "$stderr" = 'kvindex: error: unknown model "nope"; known models: "llama"; give block_size to compute keys anyway' ]
    # With a block size the keys need nothing from the index.
    run kvindex keys -r -s "$S" -m nope --block-size 4 '[1,2,3,4]'
    assert_success
    [ "$(echo "$output" | jq '.keys|length')" = 1 ]
    run kvindex query -s "$S" '{"id":1,"op":"lookup","model":"nope","block_hashes":["100"]}'
    assert_failure 1
    assert_line --index 0 'kvindex: error: unknown model "nope"; known models: "llama"'
    assert_line --index 1 '{"id":1,"ok":false,"error":"unknown model \"nope\"; known models: \"llama\""}'
    # A known namespace filters lookup's hits; none named: every namespace.
    run kvindex query -r -s "$S" '{"op":"lookup","model":"llama","lora_name":"sql","block_hashes":["200","201"]}'
    assert_success
    [ "$(echo "$output" | jq -c '.hashes|map(.pods|map(.pod))')" = '[[],["pod-b"]]' ]
    run kvindex query -r -s "$S" '{"op":"lookup","block_hashes":["200","201"]}'
    [ "$(echo "$output" | jq -c '.hashes|map(.pods|map(.pod))')" = '[["pod-b"],["pod-b"]]' ]
    # A known model still answers, even with no match.
    run kvindex match -r -s "$S" -m llama '[7,7,7,7]'
    assert_success
    assert_output '{"block_size":4,"blocks":1,"matches":[]}'
}

@test "an empty index says it has seen no model" {
    start -m llama
    run --separate-stderr kvindex match -s "$S" -m llama '[1,2,3,4]'
    assert_failure 1
    [ "$stderr" = 'kvindex: error: unknown model "llama"; the index has seen no model yet' ]
}

@test "serve warns once when lines carry no model and no -m was given" {
    sed 's/"model":"llama",//' "$EV" >"$BATS_TEST_TMPDIR/nomodel.ndjson"
    start "$BATS_TEST_TMPDIR/nomodel.ndjson"
    wait_lines 3
    run cat "$ERR"
    assert_output "kvindex: warning: $BATS_TEST_TMPDIR/nomodel.ndjson:1: events without \"model\" and no -m: they are indexed under the model \"\" (give kvsub -m or kvindex serve -m)"
    # The lines are indexed under "": a query without -m finds them.
    run kvindex match -r -s "$S" '[1,2,3,4]'
    assert_success
    [ "$(echo "$output" | jq '.matches|length')" = 2 ]
    kill "$SRV" && wait "$SRV" || true
    SRV=
    # With -m, or with a model on the lines: no warning.
    start -m llama "$BATS_TEST_TMPDIR/nomodel.ndjson"
    wait_lines 3
    [ ! -s "$ERR" ]
    kill "$SRV" && wait "$SRV" || true
    SRV=
    start "$EV"
    wait_lines 3
    [ ! -s "$ERR" ]
}

@test "a pod with more orphaned stores than --degraded-orphans is degraded until a restart" {
    {
        cat "$EV"
        for i in 1 2 3 4; do orphan pod-b "1$i"; done
    } >"$BATS_TEST_TMPDIR/o.ndjson"
    mkfifo "$BATS_TEST_TMPDIR/in"
    kvindex serve -s "$S" --degraded-orphans 3 "$BATS_TEST_TMPDIR/o.ndjson" - <"$BATS_TEST_TMPDIR/in" 2>"$ERR" 3>&- &
    SRV=$!
    exec 4>"$BATS_TEST_TMPDIR/in"
    kvindex ping -s "$S" -t 5s >/dev/null
    wait_lines 7
    run cat "$ERR"
    assert_output "kvindex: warning: pod-b (dp_rank 0): degraded: 4 orphaned stores since its last clear or restart (--degraded-orphans 3): its matches may be short"
    run kvindex pods -r -s "$S"
    [ "$(echo "$output" | jq -c '.pods|map([.pod,.orphans,.degraded])')" = '[["pod-a",0,false],["pod-b",4,true]]' ]
    run kvindex stats -s "$S" --prom
    assert_line 'kvindex_pod_degraded{pod="pod-b",dp_rank="0"} 1'
    assert_line 'kvindex_pod_degraded{pod="pod-a",dp_rank="0"} 0'
    run kvindex match -r -s "$S" -m llama '[1,2,3,4]'
    [ "$(echo "$output" | jq -c '.matches|map([.pod,.degraded])')" = '[["pod-a",false],["pod-b",true]]' ]
    # Further orphans: no second warning.
    orphan pod-b 15 >&4
    wait_lines 8
    [ "$(wc -l <"$ERR")" = 1 ]
    # A restart resets it; the count starts again.
    echo '{"pod":"pod-b","dp_rank":0,"seq":1,"type":"restart","last_seq":15}' >&4
    wait_lines 9
    run kvindex stats -s "$S" --prom
    assert_line 'kvindex_pod_degraded{pod="pod-b",dp_rank="0"} 0'
    assert_line 'kvindex_pod_orphaned_stores_total{pod="pod-b",dp_rank="0"} 5'
    for i in 1 2 3; do orphan pod-b "2$i" >&4; done
    wait_lines 12
    run kvindex pods -r -s "$S"
    [ "$(echo "$output" | jq -c '.pods[1]|[.orphans,.degraded]')" = '[8,false]' ]
    exec 4>&-
}

@test "--degraded-orphans takes a count; 0 turns it off" {
    run kvindex serve --degraded-orphans -1
    assert_failure 2
    assert_output --partial "kvindex: --degraded-orphans: '-1' is not a whole number"
    {
        cat "$EV"
        for i in $(seq 101); do orphan pod-b "$i"; done
    } >"$BATS_TEST_TMPDIR/o.ndjson"
    start --degraded-orphans 0 "$BATS_TEST_TMPDIR/o.ndjson"
    wait_lines 104
    [ ! -s "$ERR" ]
    kill "$SRV" && wait "$SRV" || true
    SRV=
    # The default is 100: the 101st orphan degrades the pod.
    start "$BATS_TEST_TMPDIR/o.ndjson"
    wait_lines 104
    run cat "$ERR"
    assert_output "kvindex: warning: pod-b (dp_rank 0): degraded: 101 orphaned stores since its last clear or restart (--degraded-orphans 100): its matches may be short"
}

@test "stats --prom: per-pod series; -o writes the file atomically" {
    printf '%s\n' '{"pod":"pod \"c\"","dp_rank":null,"model":"llama","type":"BlockStored","block_hashes":["300"],"parent_block_hash":null,"token_ids":[1,2,3,4],"block_size":4,"lora_id":null,"medium":"GPU"}' >>"$EV"
    start "$EV"
    wait_lines 4
    run kvindex stats -s "$S" --prom
    assert_success
    assert_line '# TYPE kvindex_pod_blocks gauge'
    assert_line 'kvindex_pod_blocks{pod="pod-a",dp_rank="0"} 2'
    assert_line 'kvindex_pod_blocks{pod="pod-b",dp_rank="0"} 2'
    assert_line 'kvindex_pod_blocks{pod="pod \"c\"",dp_rank=""} 1'
    assert_line '# TYPE kvindex_pod_orphaned_stores_total counter'
    assert_line 'kvindex_pod_orphaned_stores_total{pod="pod-a",dp_rank="0"} 0'
    assert_line '# TYPE kvindex_pod_last_seq gauge'
    assert_line 'kvindex_pod_last_seq{pod="pod-a",dp_rank="0"} 41'
    assert_line 'kvindex_pod_last_seq{pod="pod-b",dp_rank="0"} 8'
    # A pod whose lines carry no seq has no last_seq sample.
    refute_line --partial 'kvindex_pod_last_seq{pod="pod \"c\"'
    assert_line '# TYPE kvindex_pod_last_event_age_seconds gauge'
    assert_line --regexp '^kvindex_pod_last_event_age_seconds\{pod="pod-a",dp_rank="0"\} [0-9.]+$'
    assert_line '# TYPE kvindex_pod_degraded gauge'
    assert_line 'kvindex_pod_degraded{pod="pod-a",dp_rank="0"} 0'
    assert_line '# TYPE kvindex_max_blocks_dropped_entries_total counter'
    refute_output --partial 'evictions'
    age=$(kvindex query -r -s "$S" '{"op":"pods","ages":true}' | jq '.pods[0].last_event_age_s')
    [ "$(kvindex pods -r -s "$S" | jq '.pods[0]|has("last_event_age_s")')" = false ]
    [ "$(echo "$age >= 0 and $age < 60" | jq -n -f /dev/stdin)" = true ]

    P=$BATS_TEST_TMPDIR/prom/kvindex.prom
    mkdir "$BATS_TEST_TMPDIR/prom"
    echo old >"$P"
    run kvindex stats -s "$S" --prom -o "$P"
    assert_success
    assert_output ''
    [ "$(ls "$BATS_TEST_TMPDIR/prom")" = kvindex.prom ]
    [ "$(stat -c %a "$P")" = "$(printf '%o' $((0644 & ~0$(umask))))" ]
    run grep -c '^kvindex_pod_blocks{' "$P"
    assert_output 3
    [ "$(tail -c 1 "$P" | od -An -c | tr -d ' ')" = '\n' ]
    # Without --prom, -o writes the JSON reply.
    run kvindex stats -r -s "$S" -o "$P"
    assert_success
    [ "$(jq .entries "$P")" = 5 ]
    run kvindex stats -s "$S" -o "$BATS_TEST_TMPDIR/no/such/dir/x.prom"
    assert_failure 1
    assert_output --partial "kvindex: error: $BATS_TEST_TMPDIR/no/such/dir/x.prom: "
    run kvindex pods -s "$S" -o "$P"
    assert_failure 2
    assert_output --partial "option '-o' is not valid for pods"
}

@test "stats -o: a symlink or a file planted at FILE.tmp.PID is refused" {
    start
    P=$BATS_TEST_TMPDIR/kvindex.prom
    V=$BATS_TEST_TMPDIR/victim
    echo old >"$P"
    echo victim >"$V"
    # $$ of bash -c is kvindex's pid after exec, so the temporary path is
    # known in advance, as it would be to another user.
    # shellcheck disable=SC2016
    run --separate-stderr bash -c 'ln -s "$1" "$2.tmp.$$"; echo $$ >"$2.pid"
        exec kvindex stats -s "$3" --prom -o "$2"' _ "$V" "$P" "$S"
    pid=$(cat "$P.pid")
    assert_failure 1
    assert_output ''
    assert_equal "$stderr" "kvindex: error: $P: $P.tmp.$pid: already exists (refusing to write through a file or symlink this process did not create; remove it)"
    run cat "$V" "$P"
    assert_output "victim
old"
    # shellcheck disable=SC2016
    run --separate-stderr bash -c 'echo planted >"$2.tmp.$$"; echo $$ >"$2.pid"
        exec kvindex stats -s "$3" --prom -o "$2"' _ "$V" "$P" "$S"
    pid=$(cat "$P.pid")
    assert_failure 1
    assert_equal "$stderr" "kvindex: error: $P: $P.tmp.$pid: already exists (refusing to write through a file or symlink this process did not create; remove it)"
    run cat "$P.tmp.$pid" "$P"
    assert_output "planted
old"
}

@test "match: equal depths go to the pod holding the fewest blocks, then by name" {
    # pod-c holds [1..4] and two blocks elsewhere: 3 blocks; pod-a 2;
    # pod-b 2 (one of them in llama+sql); pod-d 1.
    {
        cat "$EV"
        echo '{"pod":"pod-c","dp_rank":0,"model":"llama","seq":1,"type":"BlockStored","block_hashes":["300","301","302"],"parent_block_hash":null,"token_ids":[1,2,3,4,9,9,9,9,8,8,8,8],"block_size":4,"lora_id":null,"medium":"GPU"}'
        echo '{"pod":"pod-d","dp_rank":0,"model":"llama","seq":1,"type":"BlockStored","block_hashes":["400"],"parent_block_hash":null,"token_ids":[1,2,3,4],"block_size":4,"lora_id":null,"medium":"GPU"}'
    } >"$BATS_TEST_TMPDIR/t.ndjson"
    start "$BATS_TEST_TMPDIR/t.ndjson"
    wait_lines 5
    run kvindex match -r -s "$S" -m llama '[1,2,3,4]'
    assert_success
    [ "$(echo "$output" | jq -c '.matches|map([.pod,.depth])')" = '[["pod-d",1],["pod-a",1],["pod-b",1],["pod-c",1]]' ]
    # Depth still comes first.
    run kvindex match -r -s "$S" -m llama '[1,2,3,4,5,6,7,8]'
    [ "$(echo "$output" | jq -c '.matches|map([.pod,.depth])')" = '[["pod-a",2],["pod-d",1],["pod-b",1],["pod-c",1]]' ]
}
