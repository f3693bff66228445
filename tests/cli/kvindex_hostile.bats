#!/usr/bin/env bats
# kvindex's socket under hostile and busy clients, and who may do what
# (issue 14, items 7-9).  The clients are tests/cli/kvindex_hostile.py; it
# prints its measurements as one JSON line, and the bounds asserted here
# are loose enough for a loaded two-core machine.

load helpers
load kvindex_helpers

HOSTILE="$BATS_TEST_DIRNAME/kvindex_hostile.py"

setup() {
    S=$BATS_TEST_TMPDIR/kv.sock
    SRV=
    SHARED=
}

teardown() {
    if [ -n "$SRV" ]; then
        kill "$SRV" 2>/dev/null
        wait "$SRV" 2>/dev/null
    fi
    [ -z "$SHARED" ] || rm -rf "$SHARED"
    return 0
}

# Starts a server on $S with the given arguments, stderr in $BATS_TEST_TMPDIR/err.
start() {
    kvindex serve -s "$S" "$@" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
    SRV=$!
    kvindex ping -s "$S" -t 10s >/dev/null
}

# Writes $2 lines of 100 one-token blocks each (pods p0..p7) to $1.
gen_blocks() {
    "$PY" - "$1" "$2" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    h = 1
    for i in range(int(sys.argv[2])):
        hs = ",".join('"%d"' % (h + k) for k in range(100))
        toks = ",".join(str((h + k) % 32000) for k in range(100))
        f.write('{"pod":"p%d","seq":%d,"type":"BlockStored","block_hashes":[%s],'
                '"parent_block_hash":null,"token_ids":[%s],"block_size":1,'
                '"model":"m"}\n' % (i % 8, i // 8, hs, toks))
        h += 100
PY
}

# A directory every user can enter and write, for tests that change users.
shared_dir() {
    SHARED=$(mktemp -d /tmp/kvindex-hostile.XXXXXX)
    chmod 1777 "$SHARED"
}

# Runs the rest of the command line as the unprivileged user nobody.
as_nobody() {
    setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}

# Whether RSS measures kvindex: a sanitizer build (build/san-*) keeps freed
# memory in its quarantine, so there it is not checked.
rss_counts() {
    case "${KVTAP_BUILD:-}" in
    */san-*) return 1 ;;
    esac
}

need_root() {
    [ "$(id -u)" = 0 ] || skip "becoming another user needs root (id -u is $(id -u))"
    command -v setpriv >/dev/null || skip "setpriv (util-linux) is not installed"
}

@test "dump: ten clients that never read cost no memory and stall nobody" {
    gen_blocks "$BATS_TEST_TMPDIR/ev" 2000
    start --write-timeout 2s "$BATS_TEST_TMPDIR/ev"
    wait_lines 2000 || wait_lines 2000
    [ "$(kvindex stats -r -s "$S" | jq .entries)" = 200000 ]
    run "$PY" "$HOSTILE" dump "$S" "$SRV" 10 7
    assert_success
    echo "$output"
    # A dump of 200,000 entries is about 40 MB of JSON: ten of them held
    # whole took 400 MB.  Streamed, the server's memory does not move.
    ! rss_counts || [ $(($(echo "$output" | jq '.rss_peak_kb - .rss_base_kb'))) -lt 51200 ]
    [ "$(echo "$output" | jq '.ping_worst_s < 1')" = true ]
    # Four dumps at a time, each dropped 2 s after its client stopped.
    [ "$(echo "$output" | jq .hogs_closed)" -ge 8 ]
    grep -q 'not reading its dump (--write-timeout), disconnected' "$BATS_TEST_TMPDIR/err"
    # A dump that is read is whole, and the server is still there.
    [ "$(kvindex dump -s "$S" -t 30s | grep -c '"type":"entry"')" = 200000 ]
}

@test "slowloris: requests not finished in --request-timeout are dropped" {
    start --request-timeout 2s
    run "$PY" "$HOSTILE" slowloris "$S" "$SRV" 100 5
    assert_success
    echo "$output"
    [ "$(echo "$output" | jq .connected)" = 100 ]
    [ "$(echo "$output" | jq .still_open)" = 0 ]
    [ "$(echo "$output" | jq '.ping_worst_s < 1')" = true ]
    grep -q 'request not finished in time (--request-timeout), disconnected' "$BATS_TEST_TMPDIR/err"
}

@test "partial requests: 200 clients holding 1 MB each are freed" {
    start --request-timeout 2s
    run "$PY" "$HOSTILE" partial "$S" "$SRV" 200 1000000 4
    assert_success
    echo "$output"
    [ "$(echo "$output" | jq .closed)" = 200 ]
    ! rss_counts || [ $(($(echo "$output" | jq '.rss_after_kb - .rss_base_kb'))) -lt 20480 ]
}

@test "--max-clients: one more gets a one-line error and its end" {
    start --max-clients 5
    run "$PY" "$HOSTILE" refused "$S" "$SRV" 5
    assert_success
    assert_output '{"id":null,"ok":false,"error":"too many clients (--max-clients 5)"}'
    grep -q 'refusing clients: too many clients (--max-clients 5)' "$BATS_TEST_TMPDIR/err"
    # Once a place is free, clients get in again.
    run kvindex ping -s "$S" -t 5s
    assert_success
    [ "$(kvindex stats -r -s "$S" | jq .refused_connections)" = 1 ]
    kvindex stats --prom -s "$S" | grep -qx 'kvindex_refused_connections_total 1'
    run kvindex serve -s "$S.x" --max-clients 0
    assert_failure 2
}

@test "--max-request caps requests below --max-line" {
    start --max-line 10M --max-request 1K
    long=$(printf '{"op":"ping","pad":"%02000d"}' 0)
    run sh -c "printf '%s\n' '$long' '{\"id\":2,\"op\":\"ping\"}' | kvindex query -s '$S' - 2>/dev/null"
    assert_failure 1
    assert_output - <<'OUT'
{"id":null,"ok":false,"error":"request line longer than --max-request"}
{"id":2,"ok":true,"data":{"version":"0.1.0"}}
OUT
    run kvindex serve -s "$S.x" --max-request 63
    assert_failure 2
}

@test "--idle-timeout drops a client that sends nothing" {
    start --idle-timeout 1s
    run "$PY" -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(10)
t = time.monotonic()
print(s.recv(1) == b"", time.monotonic() - t < 9)
' "$S"
    assert_output "True True"
    grep -q 'idle (--idle-timeout), disconnected' "$BATS_TEST_TMPDIR/err"
}

@test "ingest keeps a fair share while 200 clients query" {
    "$PY" -c '
import sys
with open(sys.argv[1], "w") as f:
    for i in range(200000):
        f.write("{\"pod\":\"p%d\",\"seq\":%d,\"type\":\"BlockStored\",\"block_hashes\":[\"%d\"],\"parent_block_hash\":null,\"token_ids\":[%d],\"block_size\":1,\"model\":\"m\"}\n" % (i % 8, i // 8, i + 1, i % 32000))
' "$BATS_TEST_TMPDIR/in.ndjson"
    mkfifo "$BATS_TEST_TMPDIR/fifo"
    # The test holds the fifo open, so the server never sees its end.
    exec 4<>"$BATS_TEST_TMPDIR/fifo"
    kvindex serve -q -s "$S" -m m <"$BATS_TEST_TMPDIR/fifo" 3>&- &
    SRV=$!
    kvindex ping -s "$S" -t 10s >/dev/null
    # 200 clients with 1000 matches each outstanding: the server always has
    # requests waiting, whatever else the machine runs.
    run "$PY" "$HOSTILE" ingest "$S" "$SRV" 200 1000 "$BATS_TEST_TMPDIR/fifo" \
        "$BATS_TEST_TMPDIR/in.ndjson" 200000
    exec 4>&-
    assert_success
    echo "$output"
    # Sharing the loop about equally gives about one line per query
    # (measured 0.8 to 1.1); serving every waiting request first left the
    # input 0.03 to 0.04 (9,000 to 13,000 lines/s).  Under ThreadSanitizer
    # (make tsan-check) the run is there for races: its 5 to 15 times
    # slower parse moves the shares, so only progress on both sides is
    # required (it measured 1.84 lines a query and 29,727 queries/s).
    min_share=0.3 min_qps=1000
    if [ "${KVTAP_SANITIZE:-}" = thread ]; then
        min_share=0.01 min_qps=10
    fi
    [ "$(echo "$output" | jq --argjson m "$min_share" '.lines_per_query >= $m')" = true ]
    [ "$(echo "$output" | jq --argjson m "$min_qps" '.queries_per_s > $m')" = true ]
}

@test "SO_PEERCRED: another user is refused unless --allow-uid or --allow-gid" {
    need_root
    shared_dir
    S=$SHARED/kv.sock
    start --socket-mode 0666
    run as_nobody kvindex ping -s "$S" -t 5s
    assert_failure 1
    assert_output 'kvindex: error: permission denied: this user may not use this server'
    # The refusal is one JSON line before the end, whatever the client.
    run as_nobody "$PY" "$HOSTILE" refused "$S" "$SRV" 0
    assert_output '{"id":null,"ok":false,"error":"permission denied: this user may not use this server"}'
    grep -q 'refused a client: uid 65534 (pid [0-9]*) is not allowed (--allow-uid, --allow-gid)' "$BATS_TEST_TMPDIR/err"
    # The server's own user and root are always let in.
    run kvindex ping -s "$S" -t 5s
    assert_success
    kill "$SRV"
    wait "$SRV" || true
    # Let in, a socket 0666 unless --socket-mode says otherwise.
    for allow in "--allow-uid 1,nobody" "--allow-gid 65534" "--allow-uid 7 --allow-uid 65534"; do
        # shellcheck disable=SC2086
        start $allow
        [ "$(stat -c %a "$S")" = 666 ]
        run as_nobody kvindex ping -s "$S" -t 5s
        assert_success
        kill "$SRV"
        wait "$SRV" || true
    done
    run kvindex serve -s "$S" --allow-uid no-such-user-here
    assert_failure 2
    assert_output --partial "--allow-uid: 'no-such-user-here' is not a user id or name"
}

@test "clear needs the server's uid or --admin-gid, and is logged with uid and pid" {
    need_root
    shared_dir
    S=$SHARED/kv.sock
    printf '%s\n' '{"pod":"a","seq":1,"type":"BlockStored","block_hashes":["1"],"parent_block_hash":null,"token_ids":[1],"block_size":1,"model":"m"}' >"$SHARED/ev"
    start --allow-uid 65534 "$SHARED/ev"
    wait_lines 1
    run as_nobody kvindex query -s "$S" '{"op":"clear","pod":"a"}'
    assert_failure 1
    assert_output - <<'OUT'
kvindex: error: permission denied: clear needs the server's uid or --admin-gid
{"id":null,"ok":false,"error":"permission denied: clear needs the server's uid or --admin-gid"}
OUT
    grep -q 'clear by uid 65534 (pid [0-9]*): refused or failed' "$BATS_TEST_TMPDIR/err"
    # Reading is allowed; the entry is still there.
    run as_nobody kvindex query -s "$S" '{"op":"stats"}'
    assert_success
    [ "$(echo "$output" | jq .data.entries)" = 1 ]
    kill "$SRV"
    wait "$SRV" || true
    start --allow-uid 65534 --admin-gid nogroup,65534 "$SHARED/ev"
    wait_lines 1
    run as_nobody kvindex query -s "$S" '{"op":"clear","pod":"a"}'
    assert_success
    assert_output '{"id":null,"ok":true,"data":{"removed":1}}'
    grep -q 'clear by uid 65534 (pid [0-9]*): done' "$BATS_TEST_TMPDIR/err"
    # The server's own user may always.
    run kvindex query -s "$S" '{"op":"clear","pod":"a"}'
    assert_success
    grep -q 'clear by uid 0 (pid [0-9]*): done' "$BATS_TEST_TMPDIR/err"
}

@test "the client refuses a server run by another user unless --server-uid" {
    need_root
    shared_dir
    S=$SHARED/kv.sock
    # exec: $! must be the server itself, for the teardown to stop it.
    (exec setpriv --reuid=65534 --regid=65534 --clear-groups \
        kvindex serve -s "$S" 2>"$BATS_TEST_TMPDIR/err" 3>&-) &
    SRV=$!
    kvindex ping -s "$S" -t 10s --server-uid 65534 >/dev/null
    run kvindex ping -s "$S" -t 5s
    assert_failure 1
    assert_output "kvindex: error: $S: served by uid 65534, neither this user nor root; refusing it (--server-uid 65534 trusts it)"
    run kvindex match -s "$S" -m m '[1]'
    assert_failure 1
    run kvindex ping -s "$S" --server-uid 65534
    assert_success
    # Its own user trusts it.
    run as_nobody kvindex ping -s "$S" -t 5s
    assert_success
}
