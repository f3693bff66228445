#!/usr/bin/env bats
# kvjs against real nats-server processes (tests/cli/nats.bash): JetStream
# on, storage under $BATS_TEST_TMPDIR, ports on 127.0.0.1 picked per test.

load helpers
bats_require_minimum_version 1.5.0
load nats

setup() {
    T=$BATS_TEST_TMPDIR
    PIDS=()
}

teardown() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null
    done
    nats_stop_all
}

# Writes N batches of pod $1 (seqs $2 .. $2+N-1, N = $3) to stdout: each
# batch a BlockStored and a BlockRemoved line, block size 4.
gen() {
    awk -v pod="$1" -v from="$2" -v n="$3" 'BEGIN {
        for (s = from; s < from + n; s++) {
            printf "{\"pod\":\"%s\",\"dp_rank\":0,\"seq\":%d,\"i\":0,\"ts\":%d.5,\"type\":\"BlockStored\",\"block_hashes\":[\"%d\"],\"parent_block_hash\":null,\"token_ids\":[%d,2,3,4],\"block_size\":4,\"lora_id\":null,\"medium\":\"GPU\"}\n", pod, s, 1700000000 + s, 1000 + s, s
            printf "{\"pod\":\"%s\",\"dp_rank\":0,\"seq\":%d,\"i\":1,\"ts\":%d.5,\"type\":\"BlockRemoved\",\"block_hashes\":[\"%d\"],\"medium\":\"GPU\"}\n", pod, s, 1700000000 + s, 999 + s
        }
    }'
}

# Publishes gen's batches POD FROM N to $NATS_URL, one message each.  The
# lines go through a file: read from a pipe, a pause of the writer longer
# than --linger (a loaded machine) ends a batch early, by design, and its
# second line becomes a message of its own.
publish() {
    gen "$@" >"$T/publish.in"
    kvjs pub -s "$NATS_URL" <"$T/publish.in"
}

# Waits up to 20 seconds until process $1 is blocked writing into a full
# pipe (the wait channel of its main thread), rather than for a fixed time
# that a loaded machine may not give it.
wait_pipe_full() {
    local i=0
    until grep -q pipe_write "/proc/$1/wchan" 2>/dev/null; do
        sleep 0.05
        i=$((i + 1))
        [ "$i" -lt 400 ] || return 1
    done
}

# The stream's message count at $1 (default $NATS_URL).
msgs() {
    kvjs info -s "${1:-$NATS_URL}" | jq .messages
}

@test "help, version and usage errors" {
    run kvjs --help
    assert_success
    assert_output --partial 'Usage: kvjs pub [OPTION]...'
    assert_output --partial 'EXIT STATUS'
    run kvjs -V
    assert_success
    assert_output --regexp '^kvjs [0-9.]+ \(libnats 3\.[0-9.]+\)$'
    run kvjs
    assert_failure 2
    assert_output "kvjs: missing command: pub, sub, info or snap
Try 'kvjs --help'."
    run kvjs frob
    assert_failure 2
    assert_output --partial 'kvjs: unknown command: frob (pub, sub, info or snap)'
    run kvjs snap get
    assert_failure 2
    assert_output --partial 'kvjs: snap: missing the snapshot name'
    run kvjs snap get a b c
    assert_failure 2
    run kvjs sub --from yesterday
    assert_failure 2
    assert_output --partial 'kvjs: --from yesterday: not first, last, new, a sequence number or a time'
    run kvjs sub --durable a.b
    assert_failure 2
    run kvjs pub --replicas 9
    assert_failure 2
}

@test "round trip: one message per batch, records travel, js_seq added" {
    nats_start
    gen pod-a 0 3 >"$T/in"
    cat >>"$T/in" <<'EOF2'
{"pod":"pod-a","dp_rank":0,"seq":9,"type":"gap","from":3,"to":9}
{"pod":"pod-a","dp_rank":0,"seq":0,"type":"restart","last_seq":9}
{"pod":"pod-a","dp_rank":0,"seq":0,"i":0,"ts":1800000000,"type":"AllBlocksCleared"}
not json
{"pod":"a.b*>","dp_rank":null,"seq":5,"i":0,"ts":1,"type":"AllBlocksCleared"}
EOF2
    run kvjs pub -s "$NATS_URL" --stats <"$T/in"
    assert_success
    assert_output 'kvjs: warning: line 10: not a JSON object; skipped
{"lines":11,"bad_lines":1,"batches":6,"acked":6,"duplicates":0,"failed":0,"resent":0}'
    [ "$(msgs)" = 6 ]
    kvjs sub -s "$NATS_URL" >"$T/out"
    # Each line comes back as it went in, with its message's sequence.
    run diff <(grep -v '^not json' "$T/in") <(sed 's/,"js_seq":[0-9]*}$/}/' "$T/out")
    assert_success
    run jq -c .js_seq "$T/out"
    assert_output "$(printf '%s\n' 1 1 2 2 3 3 4 5 5 6)"
    # The pod is escaped in the subject, so --pod finds exactly its lines.
    run kvjs sub -s "$NATS_URL" --pod 'a.b*>'
    assert_output '{"pod":"a.b*>","dp_rank":null,"seq":5,"i":0,"ts":1,"type":"AllBlocksCleared","js_seq":6}'
    run kvjs sub -s "$NATS_URL" --from 5
    assert_success
    [ "${#lines[@]}" = 3 ]
    run kvjs sub -s "$NATS_URL" --from last
    assert_output --partial '"js_seq":6}'
    # The ephemeral consumers are gone when sub exits.
    [ "$(kvjs info -s "$NATS_URL" | jq .consumers)" = 0 ]
}

@test "dedup: the same batches published twice are stored once" {
    nats_start
    gen pod-a 0 50 >"$T/in"
    run kvjs pub -s "$NATS_URL" --stats <"$T/in"
    assert_success
    assert_output '{"lines":100,"bad_lines":0,"batches":50,"acked":50,"duplicates":0,"failed":0,"resent":0}'
    [ "$(msgs)" = 50 ]
    # Two relays at once for the same pod, and a third over part of it.
    kvjs pub -s "$NATS_URL" --stats <"$T/in" 2>"$T/r1" &
    local r1=$!
    kvjs pub -s "$NATS_URL" --stats <"$T/in" 2>"$T/r2" &
    local r2=$!
    head -n 40 "$T/in" | kvjs pub -s "$NATS_URL"
    wait "$r1"
    wait "$r2"
    [ "$(msgs)" = 50 ]
    assert_equal "$(jq -c '[.acked,.duplicates]' "$T/r1")" '[50,50]'
    assert_equal "$(jq -c '[.acked,.duplicates]' "$T/r2")" '[50,50]'
    # A batch after an engine restart reuses a seq but not its ts: stored.
    gen pod-a 0 1 | sed 's/"ts":1700000000.5/"ts":1900000000/' |
        kvjs pub -s "$NATS_URL"
    [ "$(msgs)" = 51 ]
}

@test "unreachable server: retries with a message, then exits 1" {
    local port
    port=$(free_port)
    SECONDS=0
    run kvjs pub -s "nats://127.0.0.1:$port" --connect-retries 3 </dev/null
    assert_failure 1
    assert_output "kvjs: warning: cannot connect to nats://127.0.0.1:$port: No server available for connection (attempt 1 of 3); retrying in 1000ms
kvjs: warning: cannot connect to nats://127.0.0.1:$port: No server available for connection (attempt 2 of 3); retrying in 1000ms
kvjs: error: nats://127.0.0.1:$port: No server available for connection"
    [ "$SECONDS" -le 4 ]
    run kvjs sub -q -s "nats://127.0.0.1:$port" --connect-retries 1
    assert_failure 1
    assert_output "kvjs: error: nats://127.0.0.1:$port: No server available for connection"
}

@test "permission denied by the server: the denial, exit 1, no waiting" {
    nats_start_users
    local hp=$NATS_HOSTPORT
    gen pod-a 0 1 >"$T/in"
    # JetStream API calls denied: named, instead of a timeout.
    SECONDS=0
    run kvjs pub -s "nats://nocreate:p@$hp" <"$T/in"
    assert_failure 1
    assert_output 'kvjs: error: permission denied by the server: Permissions Violation for Publish to "$JS.API.STREAM.CREATE.KVTAP"'
    run kvjs pub -s "nats://noapi:p@$hp" <"$T/in"
    assert_failure 1
    assert_output 'kvjs: error: permission denied by the server: Permissions Violation for Publish to "$JS.API.STREAM.INFO.KVTAP"'
    # A relay that may not publish to the stream's subjects: the batch is
    # named, and the ack timeout (30 s) is not waited for.
    run kvjs pub -s "nats://nopub:p@$hp" --stats <"$T/in"
    assert_failure 1
    assert_output 'kvjs: error: permission denied by the server: Permissions Violation for Publish to "kvtap.ev.pod-a"
kvjs: error: batch pod-a.0.0.1700000000.5.0.2 on kvtap.ev.pod-a not acknowledged: the connection is closed
kvjs: error: 1 of 1 batches not acknowledged
{"lines":2,"bad_lines":0,"batches":1,"acked":0,"duplicates":0,"failed":1,"resent":0}'
    kvjs pub -s "$NATS_URL" <"$T/in"
    run kvjs sub -s "nats://noconsume:p@$hp"
    assert_failure 1
    assert_output 'kvjs: error: permission denied by the server: Permissions Violation for Publish to "$JS.API.CONSUMER.CREATE.KVTAP"'
    run kvjs sub -s "nats://noconsume:p@$hp" --durable d1
    assert_failure 1
    assert_output 'kvjs: error: permission denied by the server: Permissions Violation for Publish to "$JS.API.CONSUMER.INFO.KVTAP.d1"'
    run kvjs snap get s1 -s "nats://noapi:p@$hp"
    assert_failure 1
    assert_output 'kvjs: error: permission denied by the server: Permissions Violation for Publish to "$JS.API.STREAM.INFO.KV_KVTAP_SNAP"'
    # No answer can reach a client that may not subscribe to its inbox.
    run kvjs info -s "nats://nosub:p@$hp"
    assert_failure 1
    assert_output --regexp '^kvjs: error: permission denied by the server: Permissions Violation for Subscription to "_INBOX\.[A-Za-z0-9]+\.\*"$'
    [ "$SECONDS" -le 10 ]
    # Wrong credentials: refused at once, not retried, the password not shown.
    run kvjs info -s "nats://admin:wrong@$hp"
    assert_failure 1
    assert_output "kvjs: error: nats://***@$hp: Authentication Violation (Authorization Violation)"
    # The stream holds the one batch admin stored.
    [ "$(msgs)" = 1 ]
}

@test "the server gone mid-run: pub says which batches were not acked, exits 1" {
    nats_start
    gen pod-a 0 20 >"$T/in"
    mkfifo "$T/fifo"
    kvjs pub -s "$NATS_URL" --ack-timeout 2s --stats <"$T/fifo" 2>"$T/err" &
    local p=$!
    exec 4>"$T/fifo"
    head -n 20 "$T/in" >&4
    local i=0
    until [ "$(msgs 2>/dev/null)" = 10 ]; do
        sleep 0.1
        i=$((i + 1))
        [ "$i" -lt 50 ]
    done
    kill -9 "$NATS_PID_n1"
    tail -n +21 "$T/in" >&4
    exec 4>&-
    local st=0
    wait_pid "$p" 20 || st=$?
    assert_equal "$st" 1
    # One line per lost batch, naming it by its Nats-Msg-Id.
    local re='^kvjs: error: batch pod-a\.0\.\([0-9]*\)\.[0-9.]* on kvtap\.ev\.pod-a not acknowledged within 2000ms: no acknowledgment$'
    run sh -c "head -n 10 '$T/err' | sed -n 's/$re/\\1/p' | sort -n"
    assert_output "$(seq 10 19)"
    run cat "$T/err"
    assert_line --index 10 'kvjs: error: 10 of 20 batches not acknowledged'
    assert_line --index 11 '{"lines":40,"bad_lines":0,"batches":20,"acked":10,"duplicates":0,"failed":10,"resent":0}'
}

@test "a missing stream: --no-create and sub fail clearly; pub creates it" {
    nats_start
    run kvjs pub -s "$NATS_URL" --stream S1 --no-create </dev/null
    assert_failure 1
    assert_output 'kvjs: error: stream S1 not found (and --no-create); create it or drop --no-create'
    run kvjs sub -s "$NATS_URL" --stream S1
    assert_failure 1
    assert_output 'kvjs: error: stream S1 not found'
    run kvjs pub -s "$NATS_URL" --stream S1 --prefix kv.s1 --max-age 1h </dev/null
    assert_success
    run kvjs info -s "$NATS_URL" --stream S1
    assert_output '{"stream":"S1","messages":0,"bytes":0,"first_seq":0,"last_seq":0,"last_ns":0,"consumers":0,"replicas":1}'
}

@test "a message that is not kvtap NDJSON is skipped and counted" {
    nats_start
    publish pod-a 0 1
    # A foreign publisher, speaking the NATS protocol by hand.
    local port=${NATS_URL##*:}
    printf 'CONNECT {"verbose":false}\r\nPUB kvtap.ev.x 5\r\nhello\r\nPING\r\n' |
        socat -t 1 - "TCP:127.0.0.1:$port" >/dev/null
    publish pod-a 1 1
    [ "$(msgs)" = 3 ]
    kvjs sub -s "$NATS_URL" --stats >"$T/out" 2>"$T/err"
    run cat "$T/err"
    assert_output 'kvjs: warning: js_seq 2 on kvtap.ev.x is not kvtap NDJSON (line 1: not a JSON object); skipped
{"messages":3,"lines":4,"skipped":1,"again":0,"rereads":0}'
    run jq -c '[.seq,.js_seq]' "$T/out"
    assert_output "$(printf '%s\n' '[0,1]' '[0,1]' '[1,3]' '[1,3]')"
}

# Starts a relay, `kvsub -q [ARG...] SPEC | kvjs pub`, through a named pipe
# so that both pids are known: sets RELAY_SUB and RELAY_PUB.  $1 names it.
relay_start() {
    local name=$1 spec=$2
    shift 2
    mkfifo "$T/$name.fifo"
    kvjs pub -q -s "$NATS_URL" <"$T/$name.fifo" 3>&- &
    RELAY_PUB=$!
    PIDS+=($!)
    kvsub -q "$@" "$spec" >"$T/$name.fifo" 3>&- &
    RELAY_SUB=$!
    PIDS+=($!)
}

# Waits up to $2 seconds (default 30) until the stream holds $1 messages
# or more.
wait_msgs() {
    local i=0 t=${2:-30}
    until [ "$(msgs 2>/dev/null || echo 0)" -ge "$1" ]; do
        sleep 0.1
        i=$((i + 1))
        [ "$i" -lt $((t * 10)) ] || return 1
    done
}

@test "faults: a relay killed with -9 and restarted: each batch once, gaps refilled" {
    nats_start
    kvjs pub -s "$NATS_URL" </dev/null
    local n=600 k spec1 spec2
    for k in 1 2; do
        local pub=tcp://127.0.0.1:$(free_port) rep=tcp://127.0.0.1:$(free_port)
        kvpub -q --synth "$n" --seed "$k" --rate 100/s --wait-subs 1 \
            --hold 10m "$pub" "$rep" </dev/null 3>&- &
        PIDS+=($!)
        printf -v "spec$k" 'pod-%s=%s,%s' "$k" "$pub" "$rep"
    done
    relay_start r2 "$spec2"
    relay_start r1 "$spec1"
    # pod-1's relay dies mid-stream, and pod-1 goes on publishing.
    wait_msgs 200
    kill -9 "$RELAY_SUB" "$RELAY_PUB"
    wait_msgs 500
    # Restarted where the stream stops: the batches published meanwhile
    # come through kvsub's replay.
    local last
    last=$(kvjs sub -q -s "$NATS_URL" --pod pod-1 --from last | jq .seq)
    [ "$last" -lt $((n - 1)) ]
    relay_start r1b "$spec1" -o $((last + 1))
    wait_msgs 800
    kill -9 "$RELAY_SUB" "$RELAY_PUB"
    # Restarted from the beginning of the engine's buffer: the stream
    # drops the batches it holds by their Nats-Msg-Id.
    relay_start r1c "$spec1"
    wait_msgs $((2 * n)) 60
    # Every batch of each pod exactly once: seqs 0..n-1, one message each.
    kvjs sub -q -s "$NATS_URL" |
        jq -r '"\(.pod) \(.seq) \(.js_seq)"' | sort -u >"$T/batches"
    for k in 1 2; do
        assert_equal "$(awk -v p="pod-$k" '$1 == p { print $2 }' "$T/batches" |
            sort -n | tr '\n' ' ')" "$(seq 0 $((n - 1)) | tr '\n' ' ')"
    done
    # Nothing arrives late: the replay of r1c was all duplicates.
    sleep 1
    [ "$(msgs)" = $((2 * n)) ]
}

@test "faults: a relay whose kvsub died mid-batch loses nothing of that batch" {
    nats_start
    gen pod-a 0 3 >"$T/in"
    # kvsub died after batch 1's first line, in the middle of its second:
    # kvjs pub publishes batch 0 and the one line of batch 1 it has.
    run kvjs pub -s "$NATS_URL" --stats < <(head -n 3 "$T/in"; sed -n 4p "$T/in" | head -c 40)
    assert_success
    assert_output "kvjs: warning: line 4: invalid JSON: expected ',' or '}' at end of line; skipped
{\"lines\":4,\"bad_lines\":1,\"batches\":2,\"acked\":2,\"duplicates\":0,\"failed\":0,\"resent\":0}"
    # The restarted relay gets the whole range again through replay: the
    # whole batch 1 is stored besides its part, not dropped as its copy.
    run kvjs pub -s "$NATS_URL" --stats <"$T/in"
    assert_output '{"lines":6,"bad_lines":0,"batches":3,"acked":3,"duplicates":1,"failed":0,"resent":0}'
    [ "$(msgs)" = 4 ]
    run diff <(sed 's/,"js_seq":[0-9]*}$/}/' <(kvjs sub -q -s "$NATS_URL") | sort -u) <(sort "$T/in")
    assert_success
}

@test "durable: killed with -9, it resumes right after its last ack" {
    nats_start
    publish pod-a 0 200
    kvjs sub -s "$NATS_URL" --durable d1 --follow --batch 16 >"$T/o1" &
    local c=$!
    local i=0
    until [ "$(wc -l <"$T/o1")" -ge 400 ]; do
        sleep 0.05
        i=$((i + 1))
        [ "$i" -lt 200 ]
    done
    # All 200 acknowledged on the server: its ack floor says so.
    i=0
    until [ "$(/usr/bin/python3 "$BATS_TEST_DIRNAME/../peer/natsreq.py" \
        "${NATS_URL##*:}" '$JS.API.CONSUMER.INFO.KVTAP.d1' |
        jq .ack_floor.stream_seq)" = 200 ]; do
        sleep 0.05
        i=$((i + 1))
        [ "$i" -lt 200 ]
    done
    kill -9 "$c"
    wait "$c" || true
    publish pod-a 200 50
    # Without --follow it stops at the end; exactly the 50 new messages.
    run kvjs sub -s "$NATS_URL" --durable d1
    assert_success
    run jq -c .js_seq <<<"$output"
    assert_output "$(seq 201 250 | sed 'p')"
    # Nothing left for the durable; it survives its subscribers.
    run kvjs sub -s "$NATS_URL" --durable d1
    assert_success
    assert_output ''
    [ "$(kvjs info -s "$NATS_URL" | jq .consumers)" = 1 ]
}

@test "durable: acked means written; the rest is delivered again" {
    nats_start
    publish pod-a 0 1000
    # A reader that never reads: kvjs blocks writing once the pipe is full.
    mkfifo "$T/fifo"
    sleep 60 <"$T/fifo" &
    PIDS+=($!)
    kvjs sub -s "$NATS_URL" --durable d2 --batch 8 --ack-wait 1s >"$T/fifo" &
    local c=$!
    wait_pipe_full "$c"
    kill -9 "$c"
    wait "$c" || true
    run_ndjson "$T/o2" kvjs sub -s "$NATS_URL" --durable d2
    assert_success
    # The second run gets one contiguous range up to the end, with no
    # message twice, and starts after what fit in the pipe: nothing was
    # acknowledged before it was written.
    local first n
    first=$(jq .js_seq "$T/o2" | sort -un | head -n 1)
    n=$(jq .js_seq "$T/o2" | sort -un | wc -l)
    [ "$first" -gt 1 ]
    assert_equal "$n" $((1000 - first + 1))
    assert_equal "$(wc -l <"$T/o2")" $((2 * n))
    local acked_bytes
    acked_bytes=$(kvjs sub -s "$NATS_URL" | jq -c "select(.js_seq < $first)" |
        wc -c)
    [ "$acked_bytes" -le 65536 ]
}

@test "durable: a reader resumed at once loses nothing its killed run held" {
    nats_start
    publish pod-a 0 1000
    # A pipe nobody reads until the run is dead: opened read-write here, so
    # that what the killed run wrote can be read back afterwards.
    mkfifo "$T/fifo"
    exec 5<>"$T/fifo"
    kvjs sub -s "$NATS_URL" --durable d3 --batch 8 --ack-wait 3s >"$T/fifo" &
    local c=$!
    wait_pipe_full "$c"
    kill -9 "$c"
    wait "$c" || true
    # Its last line may be cut.  It held one fetch it never wrote: resumed
    # before --ack-wait ran out, the next run must not acknowledge those
    # with its own, and reads them first, in the stream's order, rather
    # than after newer ones once --ack-wait has passed.
    timeout 2 cat <&5 >"$T/r1" || true
    exec 5<&-
    jq -R 'fromjson? | .js_seq' "$T/r1" >"$T/s1"
    [ -s "$T/s1" ]
    run_ndjson "$T/o2" kvjs sub -s "$NATS_URL" --durable d3
    assert_success
    grep -q '^kvjs: warning: [0-9]* messages held unacknowledged by an earlier run: reading consumer d3 again from js_seq [0-9]*$' "$T/o2.err"
    jq .js_seq "$T/o2" | uniq >"$T/s2"
    run sh -c "sort -n '$T/s2' | cmp - '$T/s2' && sort -un '$T/s1' '$T/s2' | wc -l"
    assert_output 1000
}

@test "cluster: a server killed mid-run loses nothing acknowledged" {
    nats_start_cluster
    gen pod-a 0 20000 >"$T/in"
    # Connected to n1 alone: killing n1 forces a reconnect to n2 or n3,
    # which the client learned from the cluster.  It dies with batches in
    # flight: some fail over, later ones may be stored first.  Once in
    # about 200 runs, two or three at once on two cores, the stream
    # answered "no responders" for over 30 s after the kill (no leader
    # yet), and pub gave up on the batches in its window, as --ack-timeout
    # says it must: this test is about order and loss, so it waits longer.
    kvjs pub -s "$NATS_URL1" --replicas 3 </dev/null
    kvjs pub -s "$NATS_URL1" --stats --ack-timeout 120s <"$T/in" 2>"$T/err" &
    local p=$!
    local i=0
    until [ "$(msgs "$NATS_URL2")" -ge 3000 ]; do
        sleep 0.05
        i=$((i + 1))
        [ "$i" -lt 400 ]
    done
    kill -9 "$NATS_PID_n1"
    local st=0
    wait_pid "$p" 180 || st=$?
    cat "$T/err"
    assert_equal "$st" 0
    assert_equal "$(tail -n 1 "$T/err" | jq -c '[.batches,.acked,.failed]')" '[20000,20000,0]'
    run kvjs info -s "$NATS_URL2,$NATS_URL3"
    assert_output --regexp '"replicas":3}$'
    [ "$(jq .messages <<<"$output")" -ge 20000 ]
    # This read once failed rarely, its consumer placed on the dead server
    # (the test after this one); should it fail, the survivors' logs say
    # what the cluster was doing.
    kvjs sub -q -s "$NATS_URL3" >"$T/out" || {
        tail -n 40 "$BATS_TEST_TMPDIR/n2.log" "$BATS_TEST_TMPDIR/n3.log"
        false
    }
    assert_stored_in_order "$T/in" "$T/out"
}

@test "cluster: readers started while a server is down create their consumers on the first attempt" {
    nats_start_cluster
    gen pod-a 0 50 >"$T/in"
    kvjs pub -s "$NATS_URL1" --replicas 3 <"$T/in"
    kill -9 "$NATS_PID_n3"
    # The survivors elect a leader for the cluster (the one that says a
    # stream is "not found": nats_wait_js) and for the stream; a reader
    # started before then retries, by design.
    nats_wait_js "$NATS_URL1,$NATS_URL2" 30
    local i=0
    until kvjs info -s "$NATS_URL1,$NATS_URL2" >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -lt 30 ]
    done
    # An ephemeral consumer placed on one server, as nats-server 2.9 does
    # by default, lands on the dead one a time in three, and its creation
    # times out (a warning, and a retry); eight readers in a row without a
    # warning would then happen once in 26.
    for i in 1 2 3 4 5 6 7 8; do
        run --separate-stderr kvjs sub -s "$NATS_URL1,$NATS_URL2"
        assert_success
        assert_equal "$stderr" ""
        assert_equal "${#lines[@]}" 100
    done
}

# Asserts that the stream's lines $2 (kvjs sub) hold the batches of $1 (the
# input of kvjs pub, seqs 0 to 19999) in their order.  Batches that failed
# were sent again in order, and those stored before them once more after
# them: in stream order, the last copy of each batch comes after the last
# copy of the one before it, so a replica ends where a directly fed index
# does.
assert_stored_in_order() {
    jq .seq "$2" >"$T/seqs"
    # On failure the output names the first few batches at fault.
    run awk '{ last[$1] = NR }
        END {
            for (s = 1; s < 20000; s++)
                if (!(s in last) || last[s] < last[s - 1])
                    if (++bad <= 5)
                        print "seq " s ((s in last) ? " last at line " last[s] \
                            ", seq " s - 1 " last at line " last[s - 1] : " missing")
            print bad + 0 " out of order"
        }' "$T/seqs"
    assert_output "0 out of order"
    kvindex serve -q --exit-on-eof -s "$T/a.sock" --snapshot "$T/a.snap" <"$1"
    kvindex serve -q --exit-on-eof -s "$T/b.sock" --snapshot "$T/b.snap" <"$2"
    # The header (js_seq), pod lines (seqs, js positions) and the end line
    # (its checksum covers those) differ by design; the index must not.
    local skip='"type":"\(kvindex_snapshot\|pod\|end\)"'
    run diff <(grep -v "$skip" "$T/a.snap") <(grep -v "$skip" "$T/b.snap")
    assert_success
}

# Publishes gen's 20,000 batches of pod-a through tests/peer/natsrelay.py
# (mode $1, argument $2) with kvjs pub --stats and the further arguments,
# requires exit 0 and every batch acknowledged, and reads the stream back.
# Leaves the relay's stderr in $T/relay.err, the stats line in $T/stats and
# the stream's lines in $T/out.
publish_through_relay() {
    local mode=$1 arg=$2
    shift 2
    nats_start
    gen pod-a 0 20000 >"$T/in"
    kvjs pub -s "$NATS_URL" </dev/null
    /usr/bin/python3 "$BATS_TEST_DIRNAME/../peer/natsrelay.py" \
        "${NATS_URL##*:}" "$mode" "$arg" >"$T/port" 2>"$T/relay.err" 3>&- &
    PIDS+=($!)
    wait_file "$T/port"
    run --separate-stderr kvjs pub -s "nats://127.0.0.1:$(cat "$T/port")" \
        --stats "$@" <"$T/in"
    printf '%s\n' "$stderr"
    assert_success
    tail -n 1 <<<"$stderr" >"$T/stats"
    assert_equal "$(jq -c '[.batches,.acked,.failed]' "$T/stats")" '[20000,20000,0]'
    kvjs sub -q -s "$NATS_URL" >"$T/out"
}

@test "a connection reset while publishing: every batch stored, in order" {
    # The relay resets the connection after 2 MB: batches in flight are
    # lost, and the publisher's next write may fail (ECONNRESET or EPIPE)
    # before libnats has noticed the loss.  Neither ends the run.
    publish_through_relay reset 2000000
    grep -q '^reset after' "$T/relay.err"
    assert_stored_in_order "$T/in" "$T/out"
}

@test "a batch lost while later ones are acknowledged is sent again within --max-pending" {
    # The relay leaves out the 5,000th batch (seq 4999) and nothing else, on
    # a connection that stays up: no error, no acknowledgment, and the
    # batches after it are stored and acknowledged.
    publish_through_relay drop 5000 --max-pending 256
    grep -q '^dropped message 5000 ' "$T/relay.err"
    # It is noticed once 256 batches span the window, not at the end of
    # the input: the probe plus 255 batches after it are sent again.
    assert_equal "$(jq -c '.resent <= 256' "$T/stats")" true
    # In the stream, its first copy follows at most 255 later batches (two
    # lines each) instead of all 15,000 of them.
    run sh -c "jq .seq '$T/out' | grep -n -m 1 -x 4999"
    assert_success
    assert [ "${output%%:*}" -le $(((5000 + 255) * 2 + 1)) ]
    assert_stored_in_order "$T/in" "$T/out"
}

@test "two batches stored swapped, both acknowledgments lost: the order restored" {
    # The relay delivers the 5,000th batch (seq 4999) after the 5,001st and
    # leaves out the server's answers to both: the stream holds seq 5000
    # before seq 4999, and the publisher takes both back as failed.  The
    # probe finds 4999 stored; 5000 must be stored again after it, which
    # under its own message id the stream would drop as a duplicate.
    publish_through_relay swap 5000 --max-pending 256
    run cat "$T/relay.err"
    assert_line --index 0 --regexp '^swapped message 5000 '
    assert_equal "$(grep -c '^left out the answer' "$T/relay.err")" 2
    assert_stored_in_order "$T/in" "$T/out"
}

# Runs "$2" (a command line) with its stdout into kvindex serve on socket
# $1 (with the further arguments given), through a named pipe so that both
# pids are recorded for teardown.
index_from() {
    local sock=$1 cmd=$2
    shift 2
    mkfifo "$sock.in"
    kvindex serve -q -s "$sock" "$@" <"$sock.in" 3>&- &
    PIDS+=($!)
    eval "exec $cmd" >"$sock.in" 3>&- &
    PIDS+=($!)
}

# Waits until the index on $1 holds pods $2 (a count) with last_seq $3.
wait_index() {
    local i=0
    until kvindex pods -r -s "$1" 2>/dev/null | jq -e --argjson n "$2" \
        --argjson s "$3" '[.pods[] | select(.last_seq == $s)] | length == $n' \
        >/dev/null; do
        sleep 0.1
        i=$((i + 1))
        [ "$i" -lt 300 ] || return 1
    done
}

# Reads the stream's N messages ($1, one batch of gen each, js_seq 1 to N)
# with kvjs sub --stats and the further arguments through
# tests/peer/natsrelay.py (mode $2, argument $3), and requires exit 0 and
# every message written once, in the stream's order.  Leaves the lines in
# $T/out, the stats line last in $T/out.err and the relay's stderr in
# $T/relay.err.
read_through_relay() {
    local n=$1 mode=$2 arg=$3
    shift 3
    /usr/bin/python3 "$BATS_TEST_DIRNAME/../peer/natsrelay.py" \
        "${NATS_URL##*:}" "$mode" "$arg" >"$T/port" 2>"$T/relay.err" 3>&- &
    PIDS+=($!)
    wait_file "$T/port"
    run_ndjson "$T/out" kvjs sub -s "nats://127.0.0.1:$(cat "$T/port")" \
        --stats "$@"
    assert_success
    assert_equal "$(wc -l <"$T/out")" $((2 * n))
    run sh -c "jq .js_seq '$T/out' | uniq |
        awk 'NR != \$1 { bad++ } END { print NR, bad + 0 }'"
    assert_output "$n 0"
}

@test "sub: a message delivered again after its acknowledgment was lost is not written twice" {
    # The relay leaves out the reader's 300th acknowledgment: once
    # --ack-wait has passed, the server delivers that message again, after
    # newer ones the reader has written.  Written again there, a replica
    # would apply an old batch over newer ones.
    nats_start
    publish pod-a 0 2000
    read_through_relay 2000 dropack 300 --batch 100 --ack-wait 1s
    grep -q '^dropped message 300 on \$JS\.ACK\.' "$T/relay.err"
    # At least the one whose acknowledgment was lost came again; on a
    # machine that stalls the reader past --ack-wait, others may too.
    run jq -c '[.messages, .lines, .skipped, .again >= 1]' <(tail -n 1 "$T/out.err")
    assert_output '[2000,4000,0,true]'
}

@test "sub: a delivery lost on the way is read again in order" {
    # The relay leaves out the 300th message the server delivers, on a
    # connection that stays up: the server would send it again after
    # --ack-wait, behind newer ones.  The reader sees the hole in the
    # consumer's delivery numbers and reads again from the consumer's
    # acknowledgment floor (299 once its acknowledgments arrived; copies
    # of what it wrote above the floor are skipped).
    nats_start
    publish pod-a 0 2000
    read_through_relay 2000 dropmsg 300 --ack-wait 10s
    grep -q '^dropped delivery 300 of \$JS\.ACK\.' "$T/relay.err"
    run grep -c '^kvjs: warning: delivery 300 lost on the way: reading consumer .* again from js_seq [0-9]*$' "$T/out.err"
    assert_output 1
    run jq -c '[.messages, .lines, .skipped, .rereads]' <(tail -n 1 "$T/out.err")
    assert_output '[2000,4000,0,1]'
}

@test "sub: a connection reset mid-read: every message once, in order" {
    # The acknowledgments in flight when the connection breaks are lost, and
    # those messages come again after --ack-wait, in a burst that libnats
    # 3.4's Fetch overran its list on (kvjs sub's fetch_size).
    nats_start
    publish pod-a 0 5000
    read_through_relay 5000 reset 20000 --ack-wait 1s
    grep -q '^reset after 20000 bytes' "$T/relay.err"
    run jq -c '[.messages, .lines, .skipped]' <(tail -n 1 "$T/out.err")
    assert_output '[5000,10000,0]'
}

@test "convergence: replicas fed by kvjs sub equal a directly fed kvindex" {
    nats_start
    local specs= k
    for k in 1 2 3; do
        local pub=tcp://127.0.0.1:$(free_port) rep=tcp://127.0.0.1:$(free_port)
        kvpub -q --synth 300 --seed "$k" --wait-subs 2 --hold 10m "$pub" "$rep" \
            </dev/null 3>&- &
        PIDS+=($!)
        specs="$specs pod-$k=$pub,$rep"
        # One relay per pod.
        mkfifo "$T/relay-$k"
        kvjs pub -q -s "$NATS_URL" <"$T/relay-$k" 3>&- &
        PIDS+=($!)
        kvsub -q -m demo "pod-$k=$pub,$rep" >"$T/relay-$k" 3>&- &
        PIDS+=($!)
    done
    index_from "$T/direct.sock" "kvsub -q -m demo $specs"
    wait_index "$T/direct.sock" 3 299
    for k in 1 2; do
        index_from "$T/r$k.sock" 'kvjs sub -q -s "$NATS_URL" --follow'
    done
    wait_index "$T/r1.sock" 3 299
    wait_index "$T/r2.sock" 3 299
    kvindex dump -s "$T/direct.sock" >"$T/d.dump"
    kvindex dump -s "$T/r1.sock" >"$T/r1.dump"
    kvindex dump -s "$T/r2.sock" >"$T/r2.dump"
    [ "$(grep -c '"type":"entry"' "$T/d.dump")" -gt 100 ]
    # Replicas read one stream in one order: identical, line for line.
    run diff "$T/r1.dump" "$T/r2.dump"
    assert_success
    # The direct index saw the pods interleaved differently, so its LRU
    # order (and with it the end line's checksum) may differ, and it read
    # no js_seq (the header); its content may not differ.
    content() { grep -v '"type":"\(kvindex_snapshot\|end\)"' "$1" | sort; }
    run diff <(content "$T/d.dump") <(content "$T/r1.dump")
    assert_success
    # 1,000 match queries: the token ids of stored events in pod and seq
    # order, whole and cut (those of root events match).
    kvjs sub -s "$NATS_URL" | jq -sc 'map(select(.type == "BlockStored")) |
        sort_by([.pod, .seq]) | .[].token_ids' |
        head -n 500 | jq -c '{op: "match", model: "demo", tokens: .},
               {op: "match", model: "demo", tokens: (.[:length/2|floor] + [7, 7, 7])}' \
        >"$T/q"
    assert_equal "$(wc -l <"$T/q")" 1000
    for s in direct r1 r2; do
        kvindex query -s "$T/$s.sock" - <"$T/q" >"$T/$s.ans"
    done
    [ "$(grep -c '"pod"' "$T/direct.ans")" -ge 10 ]
    run diff "$T/direct.ans" "$T/r1.ans"
    assert_success
    run diff "$T/r1.ans" "$T/r2.ans"
    assert_success
}

@test "the man page renders cleanly and documents what --help does" {
    local m="$KVTAP_TOP/man/kvjs.1" o s
    run groff -mdoc -ww -z -Tutf8 "$m"
    assert_success
    assert_output ''
    for s in SYNOPSIS DESCRIPTION OUTPUT 'EXIT STATUS' EXAMPLES; do
        grep -qx ".Sh $s" "$m"
    done
    for o in $(kvjs --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
        grep -q -- "${o#--}" "$m" || {
            echo "kvjs: $o is in --help but not in $m"
            return 1
        }
    done
    grep -q '`kvjs`' "$KVTAP_TOP/README.md"
}

@test "only kvjs links libnats" {
    local t
    for t in "$KVTAP_BIN"/*; do
        case ${t##*/} in
        kvjs) ldd "$t" | grep -q libnats ;;
        *) ! ldd "$t" | grep -q libnats ;;
        esac
    done
}

@test "scripts/demo-cluster: both replicas answer alike and dump alike" {
    run --separate-stderr "$KVTAP_TOP/scripts/demo-cluster"
    printf '%s\n' "$stderr" # shown when the test fails
    assert_success
    assert_line --regexp '^\{"stream":"KVTAP","messages":[0-9]+,.*"consumers":2,"replicas":3\}$'
    # 900 batches; more only when a failed publish had later ones sent again.
    [ "$(grep '^{"stream"' <<<"$output" | jq .messages)" -ge 900 ]
    # The line after each "match:" header is that replica's answer.
    local m1 m2
    m1=$(grep -A1 -x 'replica-1: kvindex match:' <<<"$output" | tail -n 1)
    m2=$(grep -A1 -x 'replica-2: kvindex match:' <<<"$output" | tail -n 1)
    assert_equal "$m1" "$m2"
    assert_equal "$(jq -c 'map(.pod) | sort' <<<"$m1")" '["pod-1","pod-2","pod-3"]'
    assert_line 'replica-1 and replica-2 dumps: identical'
}

@test "snap: put, info, get round trip in chunks; a new put replaces it" {
    nats_start
    head -c 1300000 /dev/urandom | od -An -tx1 | head -c 1300000 >"$T/s1"
    run kvjs snap put idx --js-seq 41 -s "$NATS_URL" <"$T/s1"
    assert_success
    assert_output --regexp '^\{"name":"idx","gen":[0-9]+,"chunks":3,"bytes":1300000,"xxh64":"[0-9a-f]{16}","js_seq":41\}$'
    local put=$output
    run kvjs snap info idx -s "$NATS_URL"
    assert_output "$put"
    kvjs snap get idx -s "$NATS_URL" >"$T/g1"
    cmp "$T/s1" "$T/g1"
    echo small >"$T/s2"
    kvjs snap put idx -s "$NATS_URL" <"$T/s2" >/dev/null
    run kvjs snap get idx -s "$NATS_URL"
    assert_output small
    run kvjs snap info idx -s "$NATS_URL"
    assert_output --regexp '"chunks":1,"bytes":6,.*"js_seq":null\}$'
    run kvjs snap get nope -s "$NATS_URL"
    assert_failure 1
    assert_output 'kvjs: error: snapshot nope not found'
    run kvjs snap get a.b -s "$NATS_URL"
    assert_failure 2
    run kvjs snap get idx --bucket NONE -s "$NATS_URL"
    assert_failure 1
    assert_output 'kvjs: error: bucket NONE not found'
}

@test "snap put: js_seq from the snapshot's header, --js-seq overrides it" {
    nats_start
    # A kvindex snapshot whose header records the last js_seq it applied
    # (docs/kvindex-snapshot.md), with the version 2 end line.
    cat >"$T/s" <<'EOF2'
{"type":"kvindex_snapshot","version":2,"hash":"aibrix","seed":"0","hash_seed":"","js_seq":812}
{"type":"namespace","model":"m","lora_name":"","block_size":4}
{"type":"end","entries":0,"xxh64":"0123456789abcdef"}
EOF2
    run --separate-stderr kvjs snap put idx -s "$NATS_URL" <"$T/s"
    assert_success
    assert_output --regexp '^\{"name":"idx","gen":[0-9]+,"chunks":1,"bytes":[0-9]+,"xxh64":"[0-9a-f]{16}","js_seq":812\}$'
    assert_equal "$stderr" ''
    # get gives the snapshot back byte for byte, header and end line too.
    kvjs snap get idx -s "$NATS_URL" >"$T/g"
    cmp "$T/s" "$T/g"
    run --separate-stderr kvjs snap put idx --js-seq 900 -s "$NATS_URL" <"$T/s"
    assert_success
    assert_output --regexp '"js_seq":900\}$'
    assert_equal "$stderr" "kvjs: warning: --js-seq 900 overrides the snapshot header's js_seq 812"
    # A header with js_seq null, or none at all, records none.
    sed '1s/"js_seq":812/"js_seq":null/' "$T/s" | kvjs snap put idx -s "$NATS_URL" >/dev/null
    run kvjs snap info idx -s "$NATS_URL"
    assert_output --regexp '"js_seq":null\}$'
    # Only the first line is the header: a js_seq further down is not one.
    { echo '{"type":"kvindex_snapshot","version":1}'; echo '{"js_seq":5}'; } |
        kvjs snap put idx -s "$NATS_URL" >/dev/null
    run kvjs snap info idx -s "$NATS_URL"
    assert_output --regexp '"js_seq":null\}$'
    # A js_seq that is no sequence number is refused, and nothing is stored.
    sed '1s/"js_seq":812/"js_seq":-3/' "$T/s" >"$T/bad"
    run kvjs snap put idx -s "$NATS_URL" <"$T/bad"
    assert_failure 1
    assert_output "kvjs: error: the snapshot's header has a js_seq that is not a stream sequence number; give it with --js-seq"
    run kvjs snap info idx -s "$NATS_URL"
    assert_output --regexp '"bytes":[0-9]+,"xxh64":"[0-9a-f]{16}","js_seq":null\}$'
    run kvjs snap put idx --js-seq 7 -s "$NATS_URL" <"$T/bad"
    assert_success
    assert_output --regexp '"js_seq":7\}$'
}

@test "warm start: snapshot + tail equals the full history after retention" {
    nats_start
    # The stream forgets after 4 s; replica 1 follows it from the start.
    kvjs pub -s "$NATS_URL" --max-age 4s </dev/null
    index_from "$T/r1.sock" 'kvjs sub -q -s "$NATS_URL" --follow'
    # The first 50 batches store blocks 1000..1049; the tail's removes
    # leave 1000..1048 to the snapshot alone.
    gen pod-a 0 50 | grep -v BlockRemoved | kvjs pub -s "$NATS_URL"
    wait_index "$T/r1.sock" 1 49
    # Its snapshot goes to the bucket with the highest js_seq it applied:
    # from the snapshot's header where kvindex records it, else given by
    # hand (right here, where the stream is quiet, the caller knows it).
    kvindex dump -s "$T/r1.sock" >"$T/r1.snap"
    if head -n 1 "$T/r1.snap" | jq -e '.js_seq != null' >/dev/null; then
        kvjs snap put r -s "$NATS_URL" <"$T/r1.snap" >/dev/null
    else
        kvjs snap put r -s "$NATS_URL" --js-seq 50 <"$T/r1.snap" >/dev/null
    fi
    local s
    s=$(kvjs snap info r -s "$NATS_URL" | jq .js_seq)
    assert_equal "$s" 50
    # Retention drops the first 50 messages.
    local i=0
    until [ "$(msgs)" = 0 ]; do
        sleep 0.2
        i=$((i + 1))
        [ "$i" -lt 100 ]
    done
    publish pod-a 50 50
    # The stream alone cannot rebuild them any more.
    [ "$(kvjs sub -q -s "$NATS_URL" | head -n 1 | jq .js_seq)" = 51 ]
    # Replica 2 starts now: the snapshot, then the tail from js_seq + 1.
    kvjs snap get r -s "$NATS_URL" >"$T/snap.ndjson"
    index_from "$T/warm.sock" \
        "kvjs sub -q -s $NATS_URL --from $((s + 1)) --follow" \
        --snapshot "$T/snap.ndjson"
    wait_index "$T/warm.sock" 1 99
    wait_index "$T/r1.sock" 1 99
    kvindex dump -s "$T/warm.sock" >"$T/warm.dump"
    run diff <(kvindex dump -s "$T/r1.sock") "$T/warm.dump"
    assert_success
    # 1000..1048 from the snapshot, 1099 from the tail.
    assert_equal "$(jq -r 'select(.type == "entry") | .block_hash' \
        "$T/warm.dump" | sort)" "$( (seq 1000 1048; echo 1099) | sort)"
}

# Prints the time 1 ms after the stream's last message was stored, as
# @SECONDS: the server's clock, the one --from and --until compare with.
after_last() {
    local ns
    ns=$(($(kvjs info -s "$NATS_URL" | jq .last_ns) + 1000000))
    printf '@%d.%09d\n' $((ns / 1000000000)) $((ns % 1000000000))
}

@test "history: --from TIME --until TIME returns that window of one pod" {
    nats_start
    publish pod-a 0 10
    local t1 t2
    t1=$(after_last)
    sleep 0.1
    publish pod-a 10 10
    publish pod-b 0 10
    t2=$(after_last)
    sleep 0.1
    publish pod-a 20 10
    run kvjs sub -q -s "$NATS_URL" --pod pod-a --from "$t1" --until "$t2"
    assert_success
    run jq -c .seq <<<"$output"
    assert_output "$(seq 10 19 | sed 'p')"
    # The same as a UTC time stamp.
    local iso s=${t1#@}
    iso=$(date -u -d "@${s%.*}" +%Y-%m-%dT%H:%M:%S).${s#*.}Z
    run kvjs sub -q -s "$NATS_URL" --from "$iso" --until "$t2"
    assert_success
    [ "${#lines[@]}" = 40 ]
}
