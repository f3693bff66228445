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
    kill_pids
}

# Waits up to 5 s for the Unix socket $1 (an ipc endpoint) to be bound.
wait_socket() {
    local i=0
    until [ -S "$1" ] || [ $((i += 1)) -gt 100 ]; do
        sleep 0.05
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

@test "endpoints that do not answer are named on stderr, once each" {
    local p
    p=$(free_port)
    run --separate-stderr kvsub --duration 1s --warn-idle 0 \
        "b=tcp://127.0.0.1:$p" c=tcp://nonexistent.invalid:5557 \
        "d=ipc://$T/missing/dir/pub" "e=ipc://$T/pub"
    assert_success
    assert_output ''
    # Each retries every ~100 ms; at the default verbosity only the first
    # failure of each source is said.
    run sort <<<"$stderr"
    assert_output "kvsub: warning: b: cannot connect to tcp://127.0.0.1:$p: connection refused (retrying)
kvsub: warning: c: cannot connect to tcp://nonexistent.invalid:5557: cannot resolve host 'nonexistent.invalid' (retrying)
kvsub: warning: d: cannot connect to ipc://$T/missing/dir/pub: directory $T/missing/dir: No such file or directory (retrying)
kvsub: warning: e: cannot connect to ipc://$T/pub: no socket at $T/pub (is the engine running?) (retrying)"
}

@test "-v prints every monitor event" {
    local p
    p=$(free_port)
    run --separate-stderr kvsub -v --duration 700ms --warn-idle 0 \
        "b=tcp://127.0.0.1:$p"
    assert_success
    run grep -c "^kvsub: info: b: tcp://127.0.0.1:$p: connect retried ([0-9]*)$" \
        <<<"$stderr"
    [ "$output" -ge 2 ]
    run grep -c "^kvsub: warning: b: cannot connect" <<<"$stderr"
    assert_output 1
}

@test "a publisher that goes away and comes back: disconnected, then connected" {
    kvpub --synth 5 --wait-subs 1 --hold 300ms "ipc://$T/pub" 2>/dev/null &
    PIDS+=($!)
    wait_socket "$T/pub"
    kvsub -o now --duration 3s --warn-idle 0 "a=ipc://$T/pub" \
        >"$T/out.ndjson" 2>"$T/err" &
    local kv=$!
    PIDS+=($kv)
    sleep 1.3
    # The delay lets kvsub's subscription arrive first (slow joiner).
    kvpub --synth 5 --delay 500ms --hold 10s "ipc://$T/pub" 2>/dev/null &
    PIDS+=($!)
    wait_socket "$T/pub"
    wait_pid "$kv" 10
    assert_ndjson "$T/out.ndjson"
    run cat "$T/err"
    assert_output "kvsub: a: joined at seq 0 (replayed 0 batches)
kvsub: warning: a: disconnected from ipc://$T/pub (reconnecting)
kvsub: warning: a: cannot connect to ipc://$T/pub: connection refused (retrying)
kvsub: a: connected to ipc://$T/pub
kvsub: warning: a: restart: seq 0 after 4"
}

@test "--warn-idle warns once per silence, and says when the source speaks" {
    kvpub --synth 3 --wait-subs 1 --delay 1s --hold 10s "ipc://$T/pub" \
        2>/dev/null &
    PIDS+=($!)
    wait_socket "$T/pub"
    run_ndjson "$T/out.ndjson" kvsub -o now --warn-idle 300ms --duration 2s \
        "a=ipc://$T/pub"
    assert_success
    assert_equal "$stderr" "kvsub: warning: a: nothing received for 300ms
kvsub: a: joined at seq 0 (replayed 0 batches)
kvsub: a: receiving again
kvsub: warning: a: nothing received for 300ms"
    # 0 turns the warning off.
    run --separate-stderr kvsub -o now --warn-idle 0 --duration 500ms \
        "a=ipc://$T/nothing"
    assert_success
    assert_equal "$stderr" "kvsub: warning: a: cannot connect to ipc://$T/nothing: no socket at $T/nothing (is the engine running?) (retrying)"
}

@test "--probe: one line per endpoint, exit 0 when all answer" {
    kvpub --synth 5 --hold 10s "ipc://$T/pub" "ipc://$T/rep" 2>/dev/null &
    PIDS+=($!)
    wait_socket "$T/rep"
    run_ndjson "$T/out.ndjson" kvsub --probe "pod-a=ipc://$T/pub,ipc://$T/rep"
    assert_success
    run jq -c '[.pod, .role, .endpoint, .state, (.rtt_ms | type)]' \
        "$T/out.ndjson"
    assert_output "[\"pod-a\",\"pub\",\"ipc://$T/pub\",\"up\",\"number\"]
[\"pod-a\",\"replay\",\"ipc://$T/rep\",\"up\",\"number\"]"
}

@test "--probe: endpoints that do not answer are down, exit 1" {
    kvpub --synth 5 --hold 10s "ipc://$T/pub" 2>/dev/null &
    PIDS+=($!)
    wait_socket "$T/pub"
    local p
    p=$(free_port)
    run_ndjson "$T/out.ndjson" kvsub --probe --replay-timeout 300ms \
        "pod-a=ipc://$T/pub,tcp://127.0.0.1:$p" "pod-b=ipc://$T/none"
    assert_failure 1
    run jq -c 'del(.rtt_ms)' "$T/out.ndjson"
    assert_output "{\"pod\":\"pod-a\",\"role\":\"pub\",\"endpoint\":\"ipc://$T/pub\",\"state\":\"up\"}
{\"pod\":\"pod-a\",\"role\":\"replay\",\"endpoint\":\"tcp://127.0.0.1:$p\",\"state\":\"down\",\"error\":\"tcp://127.0.0.1:$p: no reply in 300ms\"}
{\"pod\":\"pod-b\",\"role\":\"pub\",\"endpoint\":\"ipc://$T/none\",\"state\":\"down\",\"error\":\"no socket at $T/none (is the engine running?)\"}"
    run --separate-stderr kvsub --probe -b "ipc://$T/x"
    assert_failure 2
    assert_equal "$stderr" "kvsub: --probe connects to engines; it cannot be used with -b
Try 'kvsub --help'."
}

@test "a replay endpoint that does not answer the catch-up is named" {
    kvpub --synth 5 --hold 10s "ipc://$T/pub" 2>/dev/null &
    PIDS+=($!)
    wait_socket "$T/pub"
    local p
    p=$(free_port)
    run_ndjson "$T/out.ndjson" kvsub --duration 1s --replay-timeout 300ms \
        --warn-idle 0 "pod-a=ipc://$T/pub,tcp://127.0.0.1:$p"
    assert_success
    assert_equal "$stderr" "kvsub: warning: pod-a: replay tcp://127.0.0.1:$p: no reply in 300ms (catching up at the first live batch)"
}

# Starts the peer as an engine in snapshot mode (PUB and snapshot socket;
# more arguments go to it) and waits until it is bound.
start_peer() {
    "$PY" "$PEER" --quiet --ready "$T/peer.ready" --pub "ipc://$T/pub" \
        --snapshot "ipc://$T/snap" --stream-ids --hold 10 "$@" \
        2>"$T/peer.err" &
    PIDS+=($!)
    wait_file "$T/peer.ready" 10
}

@test "--probe asks a snapshot endpoint for its snapshot" {
    start_peer --replay "ipc://$T/rep" --count 10
    sleep 0.3
    run_ndjson "$T/out.ndjson" kvsub --probe \
        "pod-a=ipc://$T/pub,ipc://$T/rep,ipc://$T/snap"
    assert_success
    run jq -c '[.role, .state, .snapshot_seq]' "$T/out.ndjson"
    assert_output '["pub","up",null]
["replay","up",null]
["snapshot","up",9]'
}

@test "--probe: a snapshot endpoint without a snapshot (seq -2) is down" {
    start_peer --snapshot-unavailable --count 3
    run_ndjson "$T/out.ndjson" kvsub --probe --replay-timeout 500ms \
        "pod-a=ipc://$T/pub,ipc://$T/nothing,ipc://$T/snap"
    assert_failure 1
    run jq -c 'del(.rtt_ms) | [.role, .state, .error]' "$T/out.ndjson"
    assert_output "[\"pub\",\"up\",null]
[\"replay\",\"down\",\"ipc://$T/nothing: no reply in 500ms\"]
[\"snapshot\",\"down\",\"the engine has no snapshot to give (seq -2)\"]"
}

@test "--stats-interval: one line per interval with events/s, gaps, lag and state" {
    local pub dead
    pub=tcp://127.0.0.1:$(free_port)
    dead=tcp://127.0.0.1:$(free_port)
    kvpub --synth 400 --rate 200/s --wait-subs 1 "$pub" 2>/dev/null &
    PIDS+=($!)
    run_ndjson "$T/out.ndjson" kvsub --stats-interval 500ms --duration 2200ms \
        --warn-idle 0 pod-a="$pub" pod-b="$dead"
    assert_success
    grep '^kvsub: stats: ' <<<"$stderr" >"$T/stats" || true
    # Four intervals fit in 2.2 s; allow one fewer on a busy machine.
    run wc -l <"$T/stats"
    [ "$output" -ge 3 ] && [ "$output" -le 4 ]
    # Every line names both sources in order; pod-b never sent a batch.
    run grep -cvE '^kvsub: stats: pod-a [0-9]+ ev/s, gaps 0, lag (-|-?[0-9]+ms), (up|down|connecting); pod-b 0 ev/s, gaps 0, lag -, (down|connecting)$' "$T/stats"
    assert_output 0
    # The rates add up to no more events than kvsub printed, and to some.
    local printed counted
    printed=$(jq -s '[.[] | select(.type == "BlockStored" or .type == "BlockRemoved" or .type == "AllBlocksCleared")] | length' "$T/out.ndjson")
    counted=$(sed -E 's/^kvsub: stats: pod-a ([0-9]+) ev.*/\1/' "$T/stats" |
        awk '{ s += $1 * 0.5 } END { printf "%d", s }')
    [ "$counted" -gt 0 ]
    [ "$counted" -le $((printed + printed / 10 + 2)) ]
}

@test "--stats-interval 0 is out of range" {
    run --separate-stderr kvsub --stats-interval 0 tcp://h:1
    assert_failure 2
    assert_equal "$stderr" "kvsub: --stats-interval: '0' is out of range (100ms..168h)
Try 'kvsub --help'."
}
