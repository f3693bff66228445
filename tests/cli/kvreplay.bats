#!/usr/bin/env bats
# kvreplay against the independent Python engine emulation (tests/peer/)
# over tcp on 127.0.0.1.  Expected output comes from the peer's --expect,
# rendered by tests/peer/layouts.py, and is compared as parsed JSON.

load helpers
bats_require_minimum_version 1.5.0

setup() {
    D=$BATS_TEST_TMPDIR
    PEER_PIDS=()
}

teardown() {
    for p in "${PEER_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
}

# start_peer NAME PORT [peer options...]: replay ROUTER on PORT, waits until
# every batch is buffered.  The expected NDJSON is in $D/NAME.expect.
start_peer() {
    local name=$1 port=$2
    shift 2
    rm -f "$D/$name.done"
    "$PY" "$PEER" --replay "tcp://127.0.0.1:$port" --pod pod-a --quiet \
        --hold 60 --expect "$D/$name.expect" --done "$D/$name.done" "$@" \
        2>"$D/$name.err" &
    PEER_PIDS+=($!)
    wait_file "$D/$name.done" 20
}

# json_eq GOT WANT: the two files hold the same JSON values, line by line.
# Fields named in $IGNORE (comma-separated) are left out of the comparison.
json_eq() {
    "$PY" - "$1" "$2" "${IGNORE:-}" <<'EOF'
import json, sys
ign = [k for k in sys.argv[3].split(",") if k]
def load(p):
    out = []
    for ln in open(p, encoding="utf-8"):
        o = json.loads(ln)
        for k in ign:
            o.pop(k, None)
        out.append(o)
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
for i, (x, y) in enumerate(zip(a, b)):
    if x != y:
        print("line %d differs:\n got  %s\n want %s" % (i + 1, x, y))
        sys.exit(1)
if len(a) != len(b):
    print("got %d lines, want %d" % (len(a), len(b)))
    sys.exit(1)
EOF
}

# seqs FILE: the distinct seqs of the engine events, in order of appearance.
seqs() {
    "$PY" -c '
import json, sys
out = []
for ln in open(sys.argv[1]):
    o = json.loads(ln)
    if o["type"][0].isupper() and (not out or out[-1] != o["seq"]):
        out.append(o["seq"])
print(" ".join(map(str, out)))' "$1"
}

@test "3-frame replies (vllm map events) match the peer's expectation" {
    port=$(free_port)
    start_peer p "$port" --count 50
    run_ndjson "$D/got" kvreplay "pod-a=tcp://127.0.0.1:$port"
    assert_success
    run json_eq "$D/got" "$D/p.expect"
    assert_success
}

@test "4-frame replies with a topic (vLLM PR #45177) match too" {
    port=$(free_port)
    start_peer p "$port" --count 40 --topic kv-events --reply-topic
    run_ndjson "$D/got" kvreplay "pod-a=tcp://127.0.0.1:$port"
    assert_success
    run json_eq "$D/got" "$D/p.expect"
    assert_success
}

@test "every layout decodes (legacy arrays, map batch, sglang)" {
    for layout in vllm-array vllm-map-batch v090 sglang sglang-array; do
        port=$(free_port)
        start_peer "$layout" "$port" --count 30 --layout "$layout"
        engine=vllm
        case $layout in sglang*) engine=sglang ;; esac
        run_ndjson "$D/got.$layout" kvreplay --engine "$engine" "pod-a=tcp://127.0.0.1:$port"
        assert_success
        run json_eq "$D/got.$layout" "$D/$layout.expect"
        assert_success
    done
}

@test "--from and --to select an inclusive range; -m adds the model" {
    port=$(free_port)
    start_peer p "$port" --count 30 --model llama-3
    run_ndjson "$D/got" kvreplay -m llama-3 --from 7 --to 12 "pod-a=tcp://127.0.0.1:$port"
    assert_success
    "$PY" -c '
import json, sys
for ln in open(sys.argv[1]):
    if 7 <= json.loads(ln)["seq"] <= 12:
        sys.stdout.write(ln)' "$D/p.expect" >"$D/want"
    [ -s "$D/want" ]
    run json_eq "$D/got" "$D/want"
    assert_success
    run seqs "$D/got"
    assert_output "7 8 9 10 11 12"
}

@test "--to beyond the newest seq is complete, not truncated" {
    port=$(free_port)
    start_peer p "$port" --count 10
    run_ndjson "$D/got" kvreplay --from 4 --to 100 "pod-a=tcp://127.0.0.1:$port"
    assert_success
    run seqs "$D/got"
    assert_output "4 5 6 7 8 9"
}

@test "truncation: batches that came, a gap record, a warning, exit 3" {
    port=$(free_port)
    # A 10-batch ring after 30 batches holds seqs 20..29.
    start_peer p "$port" --count 30 --buffer 10
    run_ndjson "$D/got" kvreplay --from 5 "pod-a=tcp://127.0.0.1:$port"
    assert_equal "$status" 3
    [[ "$stderr" == *"warning"*"5..19"* ]]
    head -n 1 "$D/got" >"$D/gap"
    run "$PY" -c '
import json, sys
g = json.loads(open(sys.argv[1]).readline())
assert g["type"] == "gap" and g["from"] == 5 and g["to"] == 19, g
assert g["seq"] == 19 and g["pod"] == "pod-a" and "i" not in g, g' "$D/gap"
    assert_success
    tail -n +2 "$D/got" >"$D/rest"
    grep '"seq":2[0-9],' "$D/p.expect" >"$D/want"
    run json_eq "$D/rest" "$D/want"
    assert_success
}

@test "truncation with --to below the oldest buffered seq: only the gap" {
    port=$(free_port)
    start_peer p "$port" --count 30 --buffer 10
    run_ndjson "$D/got" kvreplay --from 5 --to 9 "pod-a=tcp://127.0.0.1:$port"
    assert_equal "$status" 3
    assert_output '{"pod":"pod-a","dp_rank":null,"seq":9,"type":"gap","from":5,"to":9}'
}

@test "a run from 0 over a buffer that no longer starts at 0: gap first, exit 3" {
    port=$(free_port)
    start_peer p "$port" --count 30 --buffer 10
    for from in "" "--from 0"; do
        # shellcheck disable=SC2086
        run_ndjson "$D/got" kvreplay $from "pod-a=tcp://127.0.0.1:$port"
        assert_equal "$status" 3
        assert_line --index 0 '{"pod":"pod-a","dp_rank":0,"seq":19,"type":"gap","from":0,"to":19}'
        assert_equal "$stderr" "kvreplay: warning: pod-a: seqs 0..19 are no longer in the engine's buffer"
        tail -n +2 "$D/got" >"$D/rest"
        run seqs "$D/rest"
        assert_output "20 21 22 23 24 25 26 27 28 29"
    done
    # A buffer that still starts at 0: no gap, exit 0.
    port=$(free_port)
    start_peer q "$port" --count 10 --buffer 10
    run_ndjson "$D/got" kvreplay "pod-a=tcp://127.0.0.1:$port"
    assert_success
    refute_output --partial '"type":"gap"'
}

@test "--state: all the first time, nothing the second, then only new ones" {
    port=$(free_port)
    start_peer p "$port" --count 10
    run_ndjson "$D/got1" kvreplay --state "$D/seq" "pod-a=tcp://127.0.0.1:$port"
    assert_success
    run json_eq "$D/got1" "$D/p.expect"
    assert_success
    # The next seq, and the ts of the batch before it (seq 9): the engine's
    # identity, checked by the next run.
    run cat "$D/seq"
    assert_output "10 ts=1700000001.125"
    run_ndjson "$D/got2" kvreplay --state "$D/seq" \
        "pod-a=tcp://127.0.0.1:$port"
    assert_success
    assert_output ""
    assert_equal "$stderr" ""
    [ ! -s "$D/got2" ]
    run cat "$D/seq"
    assert_output "10 ts=1700000001.125"
    ls "$D" | { ! grep -q 'seq.tmp'; }
    # A run killed before its commit leaves seq.tmp.PID; the next run clears
    # it (a leftover with its own PID would otherwise refuse every write).
    echo partial >"$D/seq.tmp.2147483646"
    run_ndjson "$D/got2" kvreplay --state "$D/seq" \
        "pod-a=tcp://127.0.0.1:$port"
    assert_success
    [ ! -s "$D/got2" ]
    [ ! -e "$D/seq.tmp.2147483646" ]
    # The same engine, 5 batches later (the peer is deterministic per seq).
    kill "${PEER_PIDS[0]}"
    wait "${PEER_PIDS[0]}" || true
    start_peer q "$port" --count 15
    run_ndjson "$D/got3" kvreplay --state "$D/seq" "pod-a=tcp://127.0.0.1:$port"
    assert_success
    grep -E '"seq":1[0-4],' "$D/q.expect" >"$D/want3"
    run json_eq "$D/got3" "$D/want3"
    assert_success
    run cat "$D/seq"
    assert_output "15 ts=1700000001.75"
}

# restart_after_state PORT [peer options...]: a --state run over 10 batches
# of peer p, then p stops and a new engine process q starts on PORT.
restart_after_state() {
    local port=$1
    shift
    start_peer p "$port" --count 10
    run_ndjson "$D/got0" kvreplay --state "$D/seq" "pod-a=tcp://127.0.0.1:$port"
    assert_success
    kill "${PEER_PIDS[0]}"
    wait "${PEER_PIDS[0]}" || true
    start_peer q "$port" "$@"
}

@test "--state across an engine restart: restart record, from 0" {
    port=$(free_port)
    # The restarted engine has published 3 batches: newest seq 2 < 9.
    restart_after_state "$port" --count 3
    run_ndjson "$D/got" kvreplay --state "$D/seq" \
        "pod-a=tcp://127.0.0.1:$port"
    assert_success
    [[ "$stderr" == *restart* ]]
    head -n 1 "$D/got" >"$D/rec"
    run "$PY" -c '
import json, sys
r = json.loads(open(sys.argv[1]).readline())
assert r["type"] == "restart" and r["last_seq"] == 9 and r["seq"] == 0, r
assert r["dp_rank"] == 0 and "i" not in r, r' "$D/rec"
    assert_success
    tail -n +2 "$D/got" >"$D/rest"
    run json_eq "$D/rest" "$D/q.expect"
    assert_success
    run cat "$D/seq"
    assert_output "3 ts=1700000000.25"
}

@test "--state: a restarted engine that already passed the saved seq is found by its ts" {
    port=$(free_port)
    # A new process, 15 batches in: seq 9 exists again, as another batch.
    restart_after_state "$port" --count 15 --ts0 1800000000
    run_ndjson "$D/got" kvreplay --state "$D/seq" "pod-a=tcp://127.0.0.1:$port"
    assert_success
    assert_equal "$stderr" "kvreplay: warning: pod-a: the engine restarted (seq 9 is another batch: ts 1800000001.125, was 1700000001.125); fetching from 0"
    assert_line --index 0 '{"pod":"pod-a","dp_rank":0,"seq":0,"ts":1800000000,"type":"restart","last_seq":9}'
    tail -n +2 "$D/got" >"$D/rest"
    run json_eq "$D/rest" "$D/q.expect"
    assert_success
    run cat "$D/seq"
    assert_output "15 ts=1800000001.75"
}

@test "--state: a seq-only state file (0.1) still works and gains the ts" {
    port=$(free_port)
    start_peer p "$port" --count 15
    printf '10\n' >"$D/seq"
    run_ndjson "$D/got" kvreplay --state "$D/seq" "pod-a=tcp://127.0.0.1:$port"
    assert_success
    grep -E '"seq":1[0-4],' "$D/p.expect" >"$D/want"
    run json_eq "$D/got" "$D/want"
    assert_success
    run cat "$D/seq"
    assert_output "15 ts=1700000001.75"
    # Later words are for newer versions; a bad ts is an error.
    printf '15 ts=1700000001.75 stream=00ff\n' >"$D/seq"
    run_ndjson "$D/got" kvreplay --state "$D/seq" "pod-a=tcp://127.0.0.1:$port"
    assert_success
    assert_output ""
    printf '15 ts=soon\n' >"$D/seq"
    run --separate-stderr kvreplay --state "$D/seq" "pod-a=tcp://127.0.0.1:$port"
    assert_failure 1
    assert_equal "$stderr" "kvreplay: error: state file $D/seq: line 1: ts= is not a number"
}

@test "ATOM-style replies (no delimiter, msgpack([oldest, latest]) end marker) are complete: exit 0" {
    port=$(free_port)
    start_peer p "$port" --count 30 --atom
    run_ndjson "$D/got" kvreplay --state "$D/seq" "pod-a=tcp://127.0.0.1:$port"
    assert_success
    assert_equal "$stderr" ""
    run json_eq "$D/got" "$D/p.expect"
    assert_success
    run_ndjson "$D/got2" kvreplay --stats --state "$D/seq" "pod-a=tcp://127.0.0.1:$port"
    assert_success
    assert_output ""
    [ "$(echo "$stderr" | jq -c '[.decode_errors,.bad_replies,.retries]')" = '[0,0,0]' ]
    port=$(free_port)
    start_peer q "$port" --count 12 --atom --reply-topic --topic kv
    run_ndjson "$D/got" kvreplay "pod-a=tcp://127.0.0.1:$port"
    assert_success
    run json_eq "$D/got" "$D/q.expect"
    assert_success
}

@test "--state: an idle engine (newest = last printed) is not a restart" {
    port=$(free_port)
    start_peer p "$port" --count 4
    printf '4\n' >"$D/seq"
    run kvreplay --state "$D/seq" "pod-a=tcp://127.0.0.1:$port"
    assert_success
    assert_output ""
}

@test "--state: truncation still writes the next seq, exit 3" {
    port=$(free_port)
    start_peer p "$port" --count 30 --buffer 10
    printf '12\n' >"$D/seq"
    run_ndjson "$D/got" kvreplay --state "$D/seq" \
        "pod-a=tcp://127.0.0.1:$port"
    assert_equal "$status" 3
    assert_line --index 0 --regexp '"type":"gap","from":12,"to":19'
    run cat "$D/seq"
    assert_output "30 ts=1700000003.625"
}

@test "a corrupt state file is an error (exit 1), left alone" {
    printf 'abc\n' >"$D/seq"
    run --separate-stderr kvreplay -t 200ms --state "$D/seq" \
        tcp://127.0.0.1:9
    assert_failure 1
    [[ "$stderr" == *"$D/seq"* ]]
    run cat "$D/seq"
    assert_output "abc"
}

@test "an empty state file is an error (exit 1), left alone" {
    : >"$D/seq"
    run --separate-stderr kvreplay -t 200ms --state "$D/seq" \
        tcp://127.0.0.1:9
    assert_failure 1
    assert_output ''
    assert_equal "$stderr" "kvreplay: error: state file $D/seq: line 1: empty (remove the file to start from seq 0)"
    [ ! -s "$D/seq" ]
}

# start_kvpub PORT N [HWM]: kvpub with N synthetic batches in a buffer that
# holds them all, its replay ROUTER on PORT with send high-water mark HWM
# (default 0: none); waits until the last one is there.
start_kvpub() {
    local port=$1 n=$2 hwm=${3:-0} pub
    pub=$(free_port)
    kvpub -q --synth "$n" --buffer 100000 --replay-hwm "$hwm" --hold 120s \
        "tcp://127.0.0.1:$pub" "tcp://127.0.0.1:$port" &
    PEER_PIDS+=($!)
    for _ in $(seq 200); do
        kvreplay -q -t 1s --from $((n - 1)) "tcp://127.0.0.1:$port" \
            >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    return 1
}

@test "--state: an overlapping run exits 4 and prints nothing; --lock-wait waits" {
    port=$(free_port)
    start_kvpub "$port" 3000
    uri="pod-a=tcp://127.0.0.1:$port"
    # Run 1 holds the lock while its reader does not read (the output is far
    # larger than a pipe), like a slow cron run.
    { kvreplay --state "$D/s" "$uri"; echo $? >"$D/rc1"; } |
        { wait_file "$D/go" 120; cat >"$D/got1"; } &
    PEER_PIDS+=($!)
    for _ in $(seq 400); do
        compgen -G "$D/s.tmp.*" >/dev/null && break
        sleep 0.05
    done
    compgen -G "$D/s.tmp.*" >/dev/null
    run_ndjson "$D/got2" kvreplay --state "$D/s" "$uri"
    assert_equal "$status" 4
    assert_output ''
    assert_equal "$stderr" "kvreplay: error: state file $D/s is in use by another kvreplay ($D/s.lock is locked); not running"
    # A run that may wait gets the lock once run 1 ends, and then has
    # nothing new to print.
    kvreplay --lock-wait 120s --state "$D/s" "$uri" >"$D/got3" 2>"$D/err3" &
    pid3=$!
    echo go >"$D/go"
    wait_pid "$pid3" 120
    [ ! -s "$D/got3" ]
    [ ! -s "$D/err3" ]
    wait_file "$D/rc1" 60
    run cat "$D/rc1"
    assert_output 0
    # Every batch exactly once, in order.
    run seqs "$D/got1"
    assert_output "$(seq -s ' ' 0 2999)"
    run cut -d' ' -f1 "$D/s"
    assert_output 3000
}

@test "a ROUTER that drops replies past its HWM: re-requests go on while they bring batches" {
    # An engine's ROUTER keeps libzmq's SNDHWM of 1000 and drops what does
    # not fit, end marker included, so each request brings about a
    # thousand batches.  Each re-request that brings new ones is progress;
    # kvreplay once gave up after 8 of them and exited 0 with ~9,000.
    port=$(free_port)
    start_kvpub "$port" 20000 1000
    run_ndjson "$D/got" kvreplay --stats "tcp://127.0.0.1:$port"
    assert_success
    seqs "$D/got" >"$D/seqs"
    run wc -w <"$D/seqs"
    assert_output 20000
    seq -s ' ' 0 19999 | cmp - "$D/seqs"
}

@test "--lock-wait: a lock still held after it is exit 4, after the wait" {
    exec 9>"$D/s.lock"
    flock 9
    start=$(date +%s%N)
    run --separate-stderr kvreplay --lock-wait 300ms --state "$D/s" \
        tcp://127.0.0.1:9
    end=$(date +%s%N)
    exec 9>&-
    assert_equal "$status" 4
    assert_output ''
    assert_equal "$stderr" "kvreplay: error: state file $D/s is in use by another kvreplay ($D/s.lock is locked); not running"
    [ $(((end - start) / 1000000)) -ge 300 ]
}

# run_planted PLANT: kvreplay --state $D/s against the peer on $port, after
# the shell command PLANT (given $1 = $D/victim) put something at
# $D/s.tmp.PID; $$ of bash -c is kvreplay's pid after exec, so the path is
# known in advance, as it would be to another user.  Expects the refusal;
# sets pid.
run_planted() {
    # shellcheck disable=SC2016
    run_ndjson "$D/got" bash -c "$1"' "$2.tmp.$$"; echo $$ >"$2.pid"
        exec kvreplay --state "$2" "$3"' _ "$D/victim" "$D/s" \
        "pod-a=tcp://127.0.0.1:$port"
    pid=$(cat "$D/s.pid")
    assert_equal "$status" 1
    assert_output ''
    assert_equal "$stderr" "kvreplay: error: state file $D/s cannot be written: $D/s.tmp.$pid: already exists (refusing to write through a file or symlink this process did not create; remove it)"
}

@test "--state that cannot be written: exit 1 before printing anything" {
    port=$(free_port)
    start_peer p "$port" --count 10
    run_ndjson "$D/got" kvreplay --state "$D/no/dir/s" \
        "pod-a=tcp://127.0.0.1:$port"
    assert_equal "$status" 1
    assert_output ''
    assert_equal "$stderr" "kvreplay: error: state file lock $D/no/dir/s.lock: No such file or directory"
    # The temporary file is what proves the directory takes the new state:
    # something already there (planted, or left by a killed run of the same
    # pid) stops the run too.
    echo victim >"$D/victim"
    # shellcheck disable=SC2016
    run_planted 'ln -s "$1"'
    run cat "$D/victim"
    assert_output victim
    [ ! -e "$D/s" ]
    # A file another user planted, and a state already there: both left
    # alone.  (A regular file of our own user at that path is what a killed
    # run of the same pid leaves; the run clears it: see the --state test
    # above and test_atomicfile.)
    [ "$(id -u)" -eq 0 ] || skip "planting as another user needs root"
    echo 3 >"$D/s"
    run_planted 'install -o 65534 -m 644 /dev/null'
    run cat "$D/s"
    assert_output "3"
    [ "$(stat -c %u "$D/s.tmp.$pid")" -eq 65534 ]
}

@test "no peer: one-line error naming the endpoint, exit 1, within the timeout" {
    port=$(free_port)
    start=$(date +%s%N)
    run --separate-stderr kvreplay -t 500ms "tcp://127.0.0.1:$port"
    end=$(date +%s%N)
    assert_failure 1
    assert_output ""
    [[ "$stderr" == "kvreplay: error: tcp://127.0.0.1:$port"* ]]
    [ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
    [ $(((end - start) / 1000000)) -lt 3000 ]
}

@test "a silent ROUTER is the same: exit 1 after the timeout" {
    port=$(free_port)
    start_peer p "$port" --count 5 --mute-replay
    run --separate-stderr kvreplay -t 300ms "tcp://127.0.0.1:$port"
    assert_failure 1
    [[ "$stderr" == *"tcp://127.0.0.1:$port"*"no reply"* ]]
}

@test "10,000 batches arrive complete and in order through the ROUTER's HWM 1000" {
    port=$(free_port)
    start_peer p "$port" --count 10000
    # Straight to a file: bats' run would spend seconds splitting lines.
    st=0
    start=$(date +%s%N)
    kvreplay --stats -t 5s "pod-a=tcp://127.0.0.1:$port" >"$D/got" \
        2>"$D/err" || st=$?
    end=$(date +%s%N)
    assert_equal "$st" 0
    assert_ndjson "$D/got"
    run seqs "$D/got"
    [ "$output" = "$(seq -s ' ' 0 9999)" ]
    run json_eq "$D/got" "$D/p.expect"
    assert_success
    # It finishes within its 5 s timeout (its own clock; the wall clock of
    # a loaded machine gets some slack).
    run "$PY" -c '
import json, sys
s = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
assert s["batches"] == 10000 and s["gaps"] == 0, s
assert s["elapsed_ms"] < 5000, s
print(s["elapsed_ms"], s["retries"])' "$D/err"
    assert_success
    echo "elapsed_ms retries: $output; wall $(((end - start) / 1000000)) ms"
    [ $(((end - start) / 1000000)) -lt 10000 ]
}

@test "stalled (SIGSTOP) while 10,000 replies pour in: the ROUTER drops, kvreplay repairs" {
    port=$(free_port)
    start_peer p "$port" --count 10000
    kvreplay --stats -t 5s "pod-a=tcp://127.0.0.1:$port" >"$D/got" \
        2>"$D/err" &
    pid=$!
    sleep 0.05
    # Stopped, it reads nothing: the ROUTER's pipe fills up (HWM 1000) and
    # it drops the rest, the end marker included.  Continued, kvreplay must
    # notice the holes and the silence and ask again.
    kill -STOP "$pid"
    sleep 1
    kill -CONT "$pid"
    st=0
    wait_pid "$pid" 20 || st=$?
    assert_equal "$st" 0
    assert_ndjson "$D/got"
    run seqs "$D/got"
    [ "$output" = "$(seq -s ' ' 0 9999)" ]
    run json_eq "$D/got" "$D/p.expect"
    assert_success
    cat "$D/err"
}

@test "a gap only for what the engine no longer has, not for HWM drops" {
    port=$(free_port)
    start_peer p "$port" --count 10000 --buffer 6000
    st=0
    kvreplay --from 1000 "pod-a=tcp://127.0.0.1:$port" >"$D/got" \
        2>"$D/err" || st=$?
    assert_equal "$st" 3
    assert_ndjson "$D/got"
    run grep -c '"type":"gap"' "$D/got"
    assert_output "1"
    run grep '"type":"gap"' "$D/got"
    assert_output --partial '"from":1000,"to":3999'
    run seqs "$D/got"
    [ "$output" = "$(seq -s ' ' 4000 9999)" ] || {
        echo "got seqs: ${output:0:200} ... ${output: -200}"
        false
    }
}

@test "a seq the engine never buffered (failed encode) is a gap, exit 3" {
    port=$(free_port)
    start_peer p "$port" --count 12 --forget 5
    run_ndjson "$D/got" kvreplay "pod-a=tcp://127.0.0.1:$port"
    assert_equal "$status" 3
    [[ "$stderr" == *"5..5"* ]]
    run grep '"type":"gap"' "$D/got"
    assert_output --regexp '"seq":5,"type":"gap","from":5,"to":5'
    grep -v '"type":"gap"' "$D/got" >"$D/rest"
    run json_eq "$D/rest" "$D/p.expect"
    assert_success
}

@test "replies dropped mid-stream and at its tail are fetched again" {
    port=$(free_port)
    # As the ROUTER's HWM would: 1500 and the last two go missing, the end
    # marker still arrives.
    start_peer p "$port" --count 3000 --replay-drop 1500,2998,2999
    run_ndjson "$D/got" kvreplay --stats "pod-a=tcp://127.0.0.1:$port"
    assert_success
    run json_eq "$D/got" "$D/p.expect"
    assert_success
    refute_output --partial '"type":"gap"'
    [[ "$stderr" != *'"retries":0'* ]]
}

@test "a lost end marker: re-request, then the lone end marker ends the run" {
    port=$(free_port)
    start_peer p "$port" --count 20 --drop-end 1
    start=$(date +%s%N)
    run_ndjson "$D/got" kvreplay --stats -t 5s "pod-a=tcp://127.0.0.1:$port"
    end=$(date +%s%N)
    assert_success
    run json_eq "$D/got" "$D/p.expect"
    assert_success
    [[ "$stderr" == *'"retries":1'* ]]
    [ $(((end - start) / 1000000)) -lt 4000 ]
}

@test "garbage payloads become decode_error records and the run goes on" {
    port=$(free_port)
    start_peer p "$port" --count 12 --garbage 3,7
    run_ndjson "$D/got" kvreplay -q "pod-a=tcp://127.0.0.1:$port"
    assert_success
    IGNORE=error run json_eq "$D/got" "$D/p.expect"
    assert_success
    run grep -c '"type":"decode_error"' "$D/got"
    assert_output "2"
}

@test "--dp-size 2: one request per rank at port + r, ranks in order" {
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        "$PY" -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' \
            $((port + 1)) 2>/dev/null && break
    done
    "$PY" "$PEER" --replay "tcp://127.0.0.1:$port" --pod pod-a/0 --rank 0 \
        --count 5 --quiet --hold 60 --expect "$D/r0.expect" --done "$D/r0.done" &
    PEER_PIDS+=($!)
    "$PY" "$PEER" --replay "tcp://127.0.0.1:$((port + 1))" --pod pod-a/1 \
        --rank 1 --count 7 --quiet --hold 60 --expect "$D/r1.expect" \
        --done "$D/r1.done" &
    PEER_PIDS+=($!)
    wait_file "$D/r0.done" 20
    wait_file "$D/r1.done" 20
    run_ndjson "$D/got" kvreplay --dp-size 2 --state "$D/seq" "pod-a=tcp://127.0.0.1:$port"
    assert_success
    cat "$D/r0.expect" "$D/r1.expect" >"$D/want"
    run json_eq "$D/got" "$D/want"
    assert_success
    # One line per rank in the state file; a second run prints nothing.
    run cat "$D/seq"
    assert_output "$(printf '5 ts=1700000000.5\n7 ts=1700000000.75')"
    run_ndjson "$D/got2" kvreplay --dp-size 2 --state "$D/seq" \
        "pod-a=tcp://127.0.0.1:$port"
    assert_success
    assert_output ""
    [ ! -s "$D/got2" ]
}

@test "--stats prints one JSON line on stderr" {
    port=$(free_port)
    start_peer p "$port" --count 5
    run_ndjson "$D/got" kvreplay --stats "tcp://127.0.0.1:$port"
    assert_success
    echo "$stderr" | "$PY" -c '
import json, sys
lines = sys.stdin.read().strip().splitlines()
assert len(lines) == 1, lines
s = json.loads(lines[0])
assert s["batches"] == 5 and s["retries"] == 0, s'
}

@test "bad flags and values exit 2 with a hint" {
    for args in "--from abc tcp://127.0.0.1:1" "--to -1 tcp://127.0.0.1:1" \
        "-t 0 tcp://127.0.0.1:1" "-t soon tcp://127.0.0.1:1" \
        "--engine trt tcp://127.0.0.1:1" "--dp-size 0 tcp://127.0.0.1:1" \
        "--bogus tcp://127.0.0.1:1" "" "tcp://127.0.0.1:1 tcp://127.0.0.1:2" \
        "--from 9 --to 3 tcp://127.0.0.1:1" "http://x:1" \
        "tcp://127.0.0.1:1,tcp://127.0.0.1:2"; do
        # shellcheck disable=SC2086
        run --separate-stderr kvreplay $args
        assert_equal "$status" 2
        [[ "$stderr" == *"Try 'kvreplay --help'."* ]]
    done
}

@test "--help: stdout, exit 0, OUTPUT/EXIT STATUS/EXAMPLES; -V works" {
    run --separate-stderr kvreplay --help
    assert_success
    assert_line "OUTPUT"
    assert_line "EXIT STATUS"
    assert_line "EXAMPLES"
    assert_output --partial "crontab"
    assert_equal "$stderr" ""
    run kvreplay -V
    assert_success
    assert_output --regexp '^kvreplay [0-9]'
}

@test "the --help EXAMPLES run (endpoints pointed at the peer)" {
    port=$(free_port)
    start_peer p "$port" --count 1400
    uri="tcp://127.0.0.1:$port"
    kvreplay --help | sed -n '/^EXAMPLES/,$p' | grep '^  [^#]' >"$D/ex"
    [ "$(wc -l <"$D/ex")" -ge 3 ]
    n=0
    while IFS= read -r line; do
        cmd=$(printf '%s\n' "$line" | sed -E "s#tcp://[0-9.]+:[0-9]+#$uri#g")
        case $cmd in
        *"* * * * *"*)
            # The crontab entry: its command, with writable paths.
            cmd=${cmd#*\* \* \* \* \* }
            cmd=$(printf '%s\n' "$cmd" |
                sed -e "s#/var/lib/kvtap/#$D/#g" -e "s#/var/log/kvtap/#$D/#g")
            ;;
        *--dp-size*)
            # Two ranks need two engines; run it with one.
            cmd=${cmd/--dp-size 2/--dp-size 1}
            ;;
        esac
        case $cmd in
        *">>"*) run bash -c "set -o pipefail; $cmd" ;;
        *) run bash -c "set -o pipefail; $cmd >/dev/null" ;;
        esac
        assert_success
        n=$((n + 1))
    done <"$D/ex"
    [ "$n" -ge 4 ]
    [ -s "$D/a.ndjson" ]
    [ -s "$D/a.seq" ]
}

@test "man/kvreplay.1 renders, and its examples are the --help ones (run above)" {
    man="$KVTAP_TOP/man/kvreplay.1"
    run groff -mdoc -Tutf8 -ww -z "$man"
    assert_success
    assert_output ""
    kvreplay --help >"$D/help"
    for sec in OUTPUT "EXIT STATUS" EXAMPLES; do
        grep -q "^\.Sh $sec\$" "$man"
    done
    n=0
    while IFS= read -r ex; do
        grep -qF -- "$ex" "$D/help"
        n=$((n + 1))
    done < <(sed -n -e 's/^\.Dl //p' -e '/^\* \* \* \* \*/p' "$man" |
        sed -e 's/\\&//g')
    [ "$n" -ge 4 ]
}

@test "a full disk is an error: > /dev/full exits 1" {
    port=$(free_port)
    start_peer p "$port" --count 20
    run --separate-stderr bash -c "kvreplay tcp://127.0.0.1:$port >/dev/full"
    assert_failure 1
    [[ "$stderr" == *"writing output"* ]]
}

@test "| head -n 1 ends quietly with 0" {
    port=$(free_port)
    start_peer p "$port" --count 3000
    run bash -c "set -o pipefail; kvreplay tcp://127.0.0.1:$port | head -n 1 >'$D/got'"
    assert_success
    assert_output ''
    assert_ndjson "$D/got"
    run jq -c .seq "$D/got"
    assert_output 0
}

@test "SIGINT while waiting: exit 130; SIGTERM: 143" {
    port=$(free_port)
    start_peer p "$port" --count 5 --mute-replay
    for sig in INT TERM; do
        kvreplay -t 30s "tcp://127.0.0.1:$port" >"$D/out" 2>"$D/err" &
        pid=$!
        sleep 0.3
        kill -s "$sig" "$pid"
        st=0
        wait_pid "$pid" 5 || st=$?
        if [ "$sig" = INT ]; then
            assert_equal "$st" 130
        else
            assert_equal "$st" 143
        fi
    done
}

@test "-t holds against a ROUTER that never goes quiet (stale replies every 100ms)" {
    port=$(free_port)
    "$PY" "$KVTAP_TOP/tests/peer/hostile.py" --replay "tcp://127.0.0.1:$port" \
        --ready "$D/h.ready" &
    PEER_PIDS+=($!)
    wait_file "$D/h.ready" 20
    start=$(date +%s%N)
    run_ndjson "$D/got" timeout 10 kvreplay -t 1s "pod-a=tcp://127.0.0.1:$port"
    end=$(date +%s%N)
    assert_failure 1
    # Seq 0 is new the first time it comes; every later copy is stale.
    run jq -c '[.seq, .type]' "$D/got"
    assert_output '[0,"BlockStored"]'
    [ "$stderr" = "kvreplay: error: tcp://127.0.0.1:$port: no new batch in 1000ms (next seq 1)" ]
    ms=$(((end - start) / 1000000))
    echo "took ${ms}ms" >&3
    [ "$ms" -lt 4000 ]
}

@test "--deadline ends a run that -t cannot: an engine that trickles new batches" {
    port=$(free_port)
    "$PY" "$KVTAP_TOP/tests/peer/hostile.py" --replay "tcp://127.0.0.1:$port" \
        --trickle --every 0.03 --ready "$D/h.ready" &
    PEER_PIDS+=($!)
    wait_file "$D/h.ready" 20
    # A new batch every 30 ms, within -t and within the quiet time that
    # would end a stream without its end marker: -t alone never ends it.
    run timeout 3 kvreplay -q -t 1s "pod-a=tcp://127.0.0.1:$port"
    assert_equal "$status" 124
    run_ndjson "$D/got" timeout 20 kvreplay -t 1s --deadline 2s \
        "pod-a=tcp://127.0.0.1:$port"
    assert_failure 1
    [[ "$stderr" == "kvreplay: error: tcp://127.0.0.1:$port: replay deadline passed (next seq "* ]]
    # What came before the deadline is printed, in order, from seq 0.
    n=$(jq -s length "$D/got")
    [ "$n" -ge 5 ] && [ "$n" -le 100 ]
    run jq -s -c '[.[].seq] == [range(0; length)]' "$D/got"
    assert_output true
    run kvreplay --deadline 0 "tcp://127.0.0.1:$port"
    assert_failure 2
}
