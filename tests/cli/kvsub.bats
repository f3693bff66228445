#!/usr/bin/env bats
# kvsub against the independent Python engine emulation (tests/peer/peer.py)
# over real sockets: tcp on 127.0.0.1 and ipc.  Every run ends on its own
# (-c with the expected line count, --idle as a safety net); the peer waits
# for kvsub's subscription (--wait-subs) so nothing is lost to the slow
# joiner, and it is killed in teardown.

load helpers
bats_require_minimum_version 1.5.0

setup() {
    T=$BATS_TEST_TMPDIR
    PIDS=()
}

teardown() {
    kill_pids
}

# Starts a peer in the background with the given arguments, waits until its
# sockets are bound.  Usage: start_peer NAME ARGS...  (ready file T/NAME.ready)
start_peer() {
    local name=$1
    shift
    "$PY" "$PEER" --quiet --ready "$T/$name.ready" "$@" 2>"$T/$name.err" &
    PIDS+=($!)
    wait_file "$T/$name.ready" 10
}

# Compares kvsub's output file $1 with the peer's --expect file $2 line by
# line, byte for byte (the peer renders lines exactly as kvtap writes them).
# The output must be NDJSON with no blank line (assert_ndjson).  The peer
# cannot know the decoder's wording, so where the expected line has
# "error":"*" the output's error text, a non-empty JSON string, stands in
# for it (the tests check the texts themselves).  Extra arguments are
# record types to leave out of the output before comparing.
same_json() {
    assert_ndjson "$1" || return 1
    "$PY" - "$@" <<'EOF'
import json, re, sys
out, exp, drop = sys.argv[1], sys.argv[2], set(sys.argv[3:])
a = [l for l in open(out, encoding="utf-8") if json.loads(l).get("type") not in drop]
b = list(open(exp, encoding="utf-8"))
text = re.compile(r'"error":"(?:[^"\\]|\\.)+"')
bad = len(a) != len(b)
for k, (x, y) in enumerate(zip(a, b)):
    if json.loads(y).get("error") == "*":
        x = text.sub('"error":"*"', x, count=1)
    if x != y:
        print("line %d differs:\n got  %s want %s" % (k + 1, x, y))
        bad = True
        break
if len(a) != len(b):
    print("got %d lines, want %d" % (len(a), len(b)))
sys.exit(1 if bad else 0)
EOF
}

lines() { wc -l <"$1" | tr -d ' '; }

# Applies jq filter $2 to the --stats line of stderr file $1 (the only line
# that is a JSON object; the others are "kvsub: ..." diagnostics).
stats_of() {
    grep '^{' "$1" | jq -c "$2"
}

# Lines of the expect file $1 whose seq is not in the jq array $2.
lines_without() {
    jq -s --argjson s "$2" '[.[] | select(.seq as $q | $s | index($q) | not)] | length' "$1"
}

# Prints two TCP base ports P and R such that P, P+1, R and R+1 were all
# free a moment ago (for --dp-size 2).
two_port_pairs() {
    "$PY" - <<'EOF'
import socket
held, bases = [], []
while len(bases) < 2:
    a = socket.socket()
    a.bind(("127.0.0.1", 0))
    p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1))
    except OSError:
        a.close()
        continue
    held += [a, b]
    bases.append(p)
print(bases[0], bases[1])
EOF
}

# One layout over tcp: the peer publishes, kvsub must print exactly the
# expected lines.  Extra arguments go to kvsub.
layout_roundtrip() {
    local layout=$1
    shift
    local p r
    p=$(free_port)
    r=$(free_port)
    start_peer peer --pub "tcp://127.0.0.1:$p" --replay "tcp://127.0.0.1:$r" \
        --layout "$layout" --count 40 --wait-subs 1 --pod pod-a \
        --expect "$T/exp.ndjson"
    kvsub -c "$(lines "$T/exp.ndjson")" --idle 5s "$@" \
        "pod-a=tcp://127.0.0.1:$p,tcp://127.0.0.1:$r" >"$T/out.ndjson"
    run same_json "$T/out.ndjson" "$T/exp.ndjson"
    assert_success
}

@test "layout vllm decodes exactly (tcp)" {
    layout_roundtrip vllm
}

@test "layout vllm-array decodes exactly (tcp)" {
    layout_roundtrip vllm-array
}

@test "layout vllm-map-batch decodes exactly (tcp)" {
    layout_roundtrip vllm-map-batch
}

@test "layout sglang decodes exactly with --engine sglang (tcp)" {
    layout_roundtrip sglang --engine sglang
}

@test "layout sglang-array decodes exactly with --engine sglang (tcp)" {
    layout_roundtrip sglang-array --engine sglang
}

@test "layout v090 (2-element batch, 6-slot arrays) decodes exactly (tcp)" {
    layout_roundtrip v090
}

@test "ipc: every batch decodes and -m adds the model" {
    start_peer peer --pub "ipc://$T/pub" --replay "ipc://$T/rep" --count 30 \
        --wait-subs 1 --pod pod-i --model llama --expect "$T/exp.ndjson"
    kvsub -m llama -c "$(lines "$T/exp.ndjson")" --idle 5s \
        "pod-i=ipc://$T/pub,ipc://$T/rep" >"$T/out.ndjson"
    run same_json "$T/out.ndjson" "$T/exp.ndjson"
    assert_success
}

# Withheld seqs are only in the replay buffer: kvsub must fill them, in seq
# order, each once, with no gap record.
withheld_filled() {
    local pub=$1 rep=$2
    shift 2
    start_peer peer --pub "$pub" --replay "$rep" --count 30 --withhold 3,5-7,20 \
        --wait-subs 1 --pod pod-a --expect "$T/exp.ndjson" "$@"
    kvsub -c "$(lines "$T/exp.ndjson")" --idle 5s --stats \
        "pod-a=$pub,$rep" >"$T/out.ndjson" 2>"$T/err"
    run same_json "$T/out.ndjson" "$T/exp.ndjson"
    assert_success
    run grep -c '"type":"gap"' "$T/out.ndjson"
    assert_output 0
}

@test "withheld seqs are filled by replay, in order, once (tcp)" {
    local p r
    p=$(free_port)
    r=$(free_port)
    withheld_filled "tcp://127.0.0.1:$p" "tcp://127.0.0.1:$r"
}

@test "withheld seqs are filled by replay (ipc)" {
    withheld_filled "ipc://$T/pub" "ipc://$T/rep"
}

@test "replies in the 4-frame layout (topic after the delimiter) fill gaps" {
    withheld_filled "ipc://$T/pub" "ipc://$T/rep" --topic kv-events \
        --reply-topic
}

@test "a 1250-batch gap is filled over tcp despite the ROUTER's HWM of 1000" {
    local p r
    p=$(free_port)
    r=$(free_port)
    start_peer peer --pub "tcp://127.0.0.1:$p" --replay "tcp://127.0.0.1:$r" \
        --count 1300 --withhold 1-1250 --wait-subs 1 --pod pod-a \
        --expect "$T/exp.ndjson"
    # -o now: these are the counters of a gap fill, not of a catch-up.
    kvsub -o now -c "$(lines "$T/exp.ndjson")" --idle 10s --stats \
        "pod-a=tcp://127.0.0.1:$p,tcp://127.0.0.1:$r" >"$T/out.ndjson" \
        2>"$T/err"
    run same_json "$T/out.ndjson" "$T/exp.ndjson"
    assert_success
    run stats_of "$T/err" '.sources[0] | [.replayed, .gaps]'
    assert_output "[1250,0]"
}

@test "the replay counters say what was replayed" {
    start_peer peer --pub "ipc://$T/pub" --replay "ipc://$T/rep" --count 20 \
        --withhold 4-6,9 --wait-subs 1 --expect "$T/exp.ndjson"
    kvsub -o now -c "$(lines "$T/exp.ndjson")" --idle 5s --stats \
        "ipc://$T/pub,ipc://$T/rep" >"$T/out.ndjson" 2>"$T/err"
    assert_ndjson "$T/out.ndjson"
    run stats_of "$T/err" '.sources[0] | [.received, .batches, .replayed, .gaps]'
    assert_output '[16,20,4,0]'
}

@test "a forgotten seq gives a gap record with the exact range" {
    start_peer peer --pub "ipc://$T/pub" --replay "ipc://$T/rep" --count 20 \
        --withhold 3 --forget 8-10 --wait-subs 1 --pod pod-a \
        --expect "$T/exp.ndjson"
    kvsub -c $(($(lines "$T/exp.ndjson") + 1)) --idle 5s \
        "pod-a=ipc://$T/pub,ipc://$T/rep" >"$T/out.ndjson" 2>"$T/err"
    run jq -c 'select(.type=="gap") | [.pod, .from, .to, .seq]' \
        "$T/out.ndjson"
    assert_output '["pod-a",8,10,10]'
    run same_json "$T/out.ndjson" "$T/exp.ndjson" gap
    assert_success
}

@test "a gap without a replay endpoint gives a gap record and a warning" {
    start_peer peer --pub "ipc://$T/pub" --count 12 --withhold 4-5 \
        --wait-subs 1 --pod pod-a --expect "$T/exp.ndjson"
    kvsub -c $(($(lines_without "$T/exp.ndjson" '[4,5]') + 1)) --idle 5s \
        "pod-a=ipc://$T/pub" >"$T/out.ndjson" 2>"$T/err"
    assert_ndjson "$T/out.ndjson"
    run jq -c 'select(.type=="gap") | [.from, .to]' "$T/out.ndjson"
    assert_output '[4,5]'
    run grep -F 'kvsub: warning: pod-a: gap 4..5' "$T/err"
    assert_success
    # Every seq but the withheld ones is there, once.
    run jq -s -c '[.[] | select(.type|test("^[A-Z]")) | .seq] | unique' \
        "$T/out.ndjson"
    assert_output '[0,1,2,3,6,7,8,9,10,11]'
}

@test "an engine that stopped answering replay gives a gap after the timeout" {
    start_peer peer --pub "ipc://$T/pub" --replay "ipc://$T/rep" --count 10 \
        --withhold 2 --mute-replay --wait-subs 1 --expect "$T/exp.ndjson"
    kvsub -q -c $(($(lines_without "$T/exp.ndjson" '[2]') + 1)) --idle 5s \
        --replay-timeout 300ms "ipc://$T/pub,ipc://$T/rep" >"$T/out.ndjson"
    assert_ndjson "$T/out.ndjson"
    run jq -c 'select(.type=="gap") | [.from, .to]' "$T/out.ndjson"
    assert_output '[2,2]'
}

@test "a publisher restart gives a restart record" {
    start_peer peer --pub "ipc://$T/pub" --replay "ipc://$T/rep" --count 20 \
        --restart-after 12 --wait-subs 1 --pod pod-a --expect "$T/exp.ndjson"
    # -o now: the peer publishes both processes in a burst, and a catch-up
    # served after the restart would tell the two apart by numbers only.
    kvsub -o now -c "$(lines "$T/exp.ndjson")" --idle 5s \
        "pod-a=ipc://$T/pub,ipc://$T/rep" >"$T/out.ndjson" 2>"$T/err"
    run jq -c 'select(.type=="restart") | [.seq, .last_seq]' "$T/out.ndjson"
    assert_output '[0,11]'
    run same_json "$T/out.ndjson" "$T/exp.ndjson"
    assert_success
}

@test "batches of a restarted publisher missed before the restart are replayed" {
    # Seqs 0-1 are withheld in both runs of the publisher: the first time
    # kvsub starts at 2 (the baseline, -o now), after the restart it fetches
    # them.
    start_peer peer --pub "ipc://$T/pub" --replay "ipc://$T/rep" --count 20 \
        --restart-after 12 --withhold 0,1 --wait-subs 1 --pod pod-a \
        --expect "$T/exp.ndjson"
    # Everything but the first run's seqs 0 and 1.
    jq -c -s '(map(.type == "restart") | index(true)) as $r
        | to_entries | map(select(.key >= $r or .value.seq >= 2)) | .[].value' \
        "$T/exp.ndjson" >"$T/want.ndjson"
    kvsub -q -o now -c "$(lines "$T/want.ndjson")" --idle 5s \
        "pod-a=ipc://$T/pub,ipc://$T/rep" >"$T/out.ndjson"
    assert_ndjson "$T/out.ndjson"
    run jq -c 'select(.type=="restart") | [.seq, .last_seq]' "$T/out.ndjson"
    assert_output '[0,11]'
    # The restart record carries the ts of the batch that revealed it.
    jq -c 'if .type == "restart" then del(.ts) else . end' "$T/out.ndjson" \
        >"$T/a.ndjson"
    jq -c 'if .type == "restart" then del(.ts) else . end' "$T/want.ndjson" \
        >"$T/b.ndjson"
    run same_json "$T/a.ndjson" "$T/b.ndjson"
    assert_success
}

@test "garbage payloads give decode_error and the stream goes on" {
    start_peer peer --pub "ipc://$T/pub" --replay "ipc://$T/rep" --count 20 \
        --garbage 2,9 --wait-subs 1 --pod pod-a --expect "$T/exp.ndjson"
    # -o now: the join is at the first live batch, so stderr is exact.
    kvsub -o now -c "$(lines "$T/exp.ndjson")" --idle 5s \
        "pod-a=ipc://$T/pub,ipc://$T/rep" >"$T/out.ndjson" 2>"$T/err"
    run same_json "$T/out.ndjson" "$T/exp.ndjson"
    assert_success
    run jq -c 'select(.type=="decode_error") | [.seq, .bytes, .error]' \
        "$T/out.ndjson"
    assert_output - <<'EOF'
[2,9,"invalid msgpack byte"]
[9,9,"invalid msgpack byte"]
EOF
    run cat "$T/err"
    assert_output - <<'EOF'
kvsub: pod-a: joined at seq 0 (replayed 0 batches)
kvsub: warning: pod-a: seq 2: invalid msgpack byte
kvsub: warning: pod-a: seq 9: invalid msgpack byte
EOF
}

@test "malformed frames give decode_error; replay fills their seqs" {
    start_peer peer --pub "ipc://$T/pub" --replay "ipc://$T/rep" --count 20 \
        --bad-frames 4,7 --wait-subs 1 --pod pod-a --expect "$T/exp.ndjson"
    kvsub -o now -c $(($(lines "$T/exp.ndjson") + 2)) --idle 5s \
        "pod-a=ipc://$T/pub,ipc://$T/rep" >"$T/out.ndjson" 2>"$T/err"
    run jq -r 'select(.type=="decode_error") | .error' "$T/out.ndjson"
    assert_output - <<'EOF'
message has 2 parts, expected 3
seq frame is 7 bytes, expected 8 or 24
EOF
    run grep -c '"type":"decode_error".*"seq"' "$T/out.ndjson"
    assert_output 0
    run cat "$T/err"
    assert_output - <<'EOF'
kvsub: pod-a: joined at seq 0 (replayed 0 batches)
kvsub: warning: pod-a: message has 2 parts, expected 3
kvsub: warning: pod-a: seq frame is 7 bytes, expected 8 or 24
EOF
    run same_json "$T/out.ndjson" "$T/exp.ndjson" decode_error
    assert_success
}

@test "--dp-size 2 expands a spec onto offset ports with names NAME/r" {
    local p r
    read -r p r < <(two_port_pairs)
    start_peer p0 --pub "tcp://127.0.0.1:$p" --replay "tcp://127.0.0.1:$r" \
        --rank 0 --count 10 --withhold 5 --wait-subs 1 --pod fleet/0 \
        --expect "$T/exp0.ndjson"
    start_peer p1 --pub "tcp://127.0.0.1:$((p + 1))" \
        --replay "tcp://127.0.0.1:$((r + 1))" --rank 1 --count 10 \
        --withhold 2 --wait-subs 1 --pod fleet/1 --expect "$T/exp1.ndjson"
    n=$(($(lines "$T/exp0.ndjson") + $(lines "$T/exp1.ndjson")))
    kvsub --dp-size 2 -c "$n" --idle 5s \
        "fleet=tcp://127.0.0.1:$p,tcp://127.0.0.1:$r" >"$T/out.ndjson"
    assert_ndjson "$T/out.ndjson"
    grep -F '{"pod":"fleet/0",' "$T/out.ndjson" >"$T/out0.ndjson"
    grep -F '{"pod":"fleet/1",' "$T/out.ndjson" >"$T/out1.ndjson"
    run same_json "$T/out0.ndjson" "$T/exp0.ndjson"
    assert_success
    run same_json "$T/out1.ndjson" "$T/exp1.ndjson"
    assert_success
}

@test "--endpoints reads specs from a file with comments" {
    start_peer a --pub "ipc://$T/a" --count 5 --wait-subs 1 --pod a \
        --expect "$T/expa.ndjson"
    start_peer b --pub "ipc://$T/b" --count 5 --wait-subs 1 --pod b \
        --expect "$T/expb.ndjson"
    printf '# fleet\n\na=ipc://%s/a   # first\n  b=ipc://%s/b\n' "$T" "$T" \
        >"$T/fleet.txt"
    n=$(($(lines "$T/expa.ndjson") + $(lines "$T/expb.ndjson")))
    kvsub --endpoints "$T/fleet.txt" -c "$n" --idle 5s >"$T/out.ndjson"
    assert_ndjson "$T/out.ndjson"
    grep -F '{"pod":"a",' "$T/out.ndjson" >"$T/outa.ndjson"
    grep -F '{"pod":"b",' "$T/out.ndjson" >"$T/outb.ndjson"
    run same_json "$T/outa.ndjson" "$T/expa.ndjson"
    assert_success
    run same_json "$T/outb.ndjson" "$T/expb.ndjson"
    assert_success
}

@test "-b binds the SUB socket for an engine that connects" {
    p=$(free_port)
    "$PY" "$PEER" --count 3 --pod x --expect "$T/exp.ndjson"
    kvsub -b -c "$(lines "$T/exp.ndjson")" --idle 5s "x=tcp://127.0.0.1:$p" \
        >"$T/out.ndjson" &
    local kv=$!
    PIDS+=($kv)
    sleep 0.3
    start_peer peer --pub "tcp://127.0.0.1:$p" --pub-connect --count 3 \
        --wait-subs 1
    wait_pid "$kv" 10
    run same_json "$T/out.ndjson" "$T/exp.ndjson"
    assert_success
}

@test "--topic subscribes to a prefix" {
    start_peer peer --pub "ipc://$T/pub" --topic kv-events --count 4 \
        --wait-subs 1
    kvsub --topic kv -c 1 --idle 5s "ipc://$T/pub" >"$T/out.ndjson"
    assert_ndjson "$T/out.ndjson"
    run jq -c .seq "$T/out.ndjson"
    assert_output 0
}

@test "-c N writes exactly N lines" {
    start_peer peer --pub "ipc://$T/pub" --count 30 --wait-subs 1
    kvsub -c 7 --idle 5s "ipc://$T/pub" >"$T/out.ndjson"
    assert_ndjson "$T/out.ndjson"
    assert_equal "$(lines "$T/out.ndjson")" 7
}

@test "--idle ends a silent stream with 0 and no output" {
    run --separate-stderr kvsub --idle 200ms "ipc://$T/nobody"
    assert_success
    assert_output ''
    # The only diagnostic: nothing listens there (kvsub_diag.bats).
    assert_equal "$stderr" "kvsub: warning: ipc://$T/nobody: cannot connect to ipc://$T/nobody: no socket at $T/nobody (is the engine running?) (retrying)"
}

@test "--duration ends the run" {
    run --separate-stderr kvsub --duration 300ms --stats "ipc://$T/nobody"
    assert_success
    assert_output ''
    run jq -c '.sources[0].received' < <(grep '^{' <<<"$stderr")
    assert_output 0
}

@test "kvsub | head -n 1 exits 0" {
    start_peer peer --pub "ipc://$T/pub" --count 2000 --wait-subs 1 --rate 2000
    run bash -c "set -o pipefail; kvsub --idle 5s 'ipc://$T/pub' | head -n 1 >'$T/out.ndjson'"
    assert_success
    # Nothing about the closed pipe; only the note on where it joined.
    assert_output "kvsub: ipc://$T/pub: joined at seq 0 (replayed 0 batches)"
    assert_ndjson "$T/out.ndjson"
    run jq -c .seq "$T/out.ndjson"
    assert_output 0
}

# Starts kvsub in the background on a peer that keeps publishing slowly,
# waits for its first line, sends signal $1 and expects exit status $2.
signal_exit() {
    start_peer peer --pub "ipc://$T/pub" --count 1000 --rate 20 --wait-subs 1
    kvsub "ipc://$T/pub" >"$T/out.ndjson" 2>"$T/err" &
    local kv=$!
    PIDS+=($kv)
    wait_file "$T/out.ndjson" 20
    kill -s "$1" "$kv"
    local st=0
    wait_pid "$kv" 5 || st=$?
    assert_equal "$st" "$2"
    # Flushed before exiting: every line, the last one too, is complete.
    assert_ndjson "$T/out.ndjson"
}

@test "SIGINT flushes and exits 130" {
    signal_exit INT 130
}

@test "SIGTERM flushes and exits 143" {
    signal_exit TERM 143
}

@test "SIGUSR1 prints the stats line and the run goes on" {
    start_peer peer --pub "ipc://$T/pub" --count 1000 --rate 20 --wait-subs 1
    kvsub --idle 5s "ipc://$T/pub" >"$T/out.ndjson" 2>"$T/err" &
    local kv=$!
    PIDS+=($kv)
    wait_file "$T/out.ndjson" 20
    kill -USR1 "$kv"
    local i=0
    until grep -q '^{' "$T/err" || [ $((i += 1)) -gt 100 ]; do
        sleep 0.05
    done
    run stats_of "$T/err" '.sources[0] | .received > 0'
    assert_output true
    # Still running, and still writing.
    local n
    n=$(lines "$T/out.ndjson")
    sleep 0.5
    kill -0 "$kv"
    [ "$(lines "$T/out.ndjson")" -gt "$n" ]
    kill -TERM "$kv"
    local st=0
    wait_pid "$kv" 5 || st=$?
    assert_equal "$st" 143
    assert_ndjson "$T/out.ndjson"
}

@test "SIGUSR1 during a gap fill does not lose the gap" {
    # The peer waits before answering replay, so kvsub is inside the fill
    # when SIGUSR1 arrives (sent once the peer has the request); the
    # interrupted fetch must go on, not give up.
    start_peer peer --pub "ipc://$T/pub" --replay "ipc://$T/rep" --count 6 \
        --withhold 3 --replay-delay 1.5 --wait-subs 1 --pod pod-a \
        --requested "$T/requested" --done "$T/done" --expect "$T/exp.ndjson"
    kvsub -c "$(lines "$T/exp.ndjson")" --idle 10s \
        "pod-a=ipc://$T/pub,ipc://$T/rep" >"$T/out.ndjson" 2>"$T/err" &
    local kv=$!
    PIDS+=($kv)
    wait_file "$T/requested" 20
    kill -USR1 "$kv"
    local st=0
    wait_pid "$kv" 15 || st=$?
    assert_equal "$st" 0
    run same_json "$T/out.ndjson" "$T/exp.ndjson"
    assert_success
    run grep -c '"type":"gap"' "$T/out.ndjson"
    assert_output 0
}

@test "bad flags and values exit 2 with a hint" {
    for args in "--nope tcp://h:1" "-c 0 tcp://h:1" "-c x tcp://h:1" \
        "--idle 5x tcp://h:1" "--engine trt tcp://h:1" "udp://h:1" "" \
        "--dp-size 2 ipc:///tmp/x" "--dp-size 0 tcp://h:1" "=tcp://h:1"; do
        run kvsub $args
        assert_equal "$status" 2
        assert_output --partial "Try 'kvsub --help'."
    done
}

@test "--endpoints: a bad line names the file and line; a missing file is 1" {
    printf 'ok=tcp://h:1\nbad=udp://h:2\n' >"$T/f.txt"
    run kvsub --endpoints "$T/f.txt"
    assert_equal "$status" 2
    assert_output --partial "f.txt:2:"
    run kvsub --endpoints "$T/missing.txt"
    assert_equal "$status" 1
}

@test "an endpoint that cannot be bound exits 1" {
    run kvsub -b --idle 100ms "ipc:///nonexistent-dir/x/y"
    assert_equal "$status" 1
    assert_output --partial 'cannot bind'
}

@test "--help documents OUTPUT, EXIT STATUS and EXAMPLES; -V prints versions" {
    run kvsub --help
    assert_success
    assert_output --partial 'Usage: kvsub'
    assert_output --partial 'OUTPUT'
    assert_output --partial 'EXIT STATUS'
    assert_output --partial 'EXAMPLES'
    run kvsub -V
    assert_success
    assert_output --partial 'libzmq'
}

@test "the man page has the same sections as --help" {
    run grep -c -E '^\.Sh (OUTPUT|EXIT STATUS|EXAMPLES)' "$KVTAP_TOP/man/kvsub.1"
    assert_output 3
}

# vLLM's snapshot mode on the live socket (peer --stream-ids): 24-byte seq
# frames (seq + a 16-byte stream id per publisher process), idle empty
# batches, and a new stream id as a restart whatever the seq does.

@test "24-byte seq frames decode; lines carry the stream id; idle batches print nothing" {
    start_peer peer --pub "ipc://$T/pub" --replay "ipc://$T/rep" --count 20 \
        --stream-ids --heartbeats 3,4,5,12 --wait-subs 1 --pod pod-a \
        --expect "$T/exp.ndjson"
    run_ndjson "$T/out.ndjson" kvsub -o now -c "$(lines "$T/exp.ndjson")" \
        --idle 5s --stats "pod-a=ipc://$T/pub,ipc://$T/rep"
    assert_success
    run cmp "$T/out.ndjson" "$T/exp.ndjson"
    assert_success
    run jq -r -s 'map(.stream) | unique | .[]' "$T/out.ndjson"
    assert_output "a0a0a0a0a0a0a0a00001020304050607"
    # The empty batches came, no line and no gap for them.
    run jq -c '.sources[0] | [.received, .batches, .gaps, .decode_errors]' \
        < <(grep '^{' "$T/out.ndjson.err")
    assert_output "[20,20,0,0]"
    run grep -c '"seq":[345],' "$T/out.ndjson"
    assert_output 0
}

@test "a new stream id is a restart even when the seq goes on upward" {
    # The new process's seqs 0-14 never arrive live: the first one kvsub
    # sees is 15, above the old process's last (9).  Only the stream id
    # tells a restart from a gap.
    start_peer peer --pub "ipc://$T/pub" --replay "ipc://$T/rep" --count 30 \
        --restart-after 10 --withhold-new 0-14 --stream-ids --wait-subs 1 \
        --pod pod-a --expect "$T/exp.ndjson"
    run_ndjson "$T/out.ndjson" kvsub -o now -c "$(lines "$T/exp.ndjson")" \
        --idle 5s "pod-a=ipc://$T/pub,ipc://$T/rep"
    assert_success
    run jq -c 'select(.type=="restart") | [.seq, .last_seq, .stream]' \
        "$T/out.ndjson"
    assert_output '[0,9,"a1a1a1a1a1a1a1a10001020304050607"]'
    run grep -F 'kvsub: warning: pod-a: restart: seq 15 after 9 (new stream id)' \
        <<<"$stderr"
    assert_success
    # The restart record carries the ts of the batch that revealed it; the
    # rest, the new process's 0-14 fetched by replay included, is exact.
    jq -c 'if .type == "restart" then del(.ts) else . end' "$T/out.ndjson" \
        >"$T/a.ndjson"
    jq -c 'if .type == "restart" then del(.ts) else . end' "$T/exp.ndjson" \
        >"$T/b.ndjson"
    run cmp "$T/a.ndjson" "$T/b.ndjson"
    assert_success
}

# Checks a kvsub output $1 that took one snapshot after a restart or a
# hole: no gap record; after snapshot_end, the engine batches S+1..$2 each
# once (S the snapshot's seq, at least $3); prints S.
snapshot_taken() {
    jq -e -s -r --argjson last "$2" --argjson min "$3" '
        (map(.type) | index("snapshot_end")) as $e
        | .[$e].seq as $s
        | [.[$e + 1:][] | select(.type|test("^[A-Z]")) | .seq] as $after
        | if (map(select(.type == "gap")) | length) == 0 and $s >= $min
             and ($after | unique) == [range($s + 1; $last + 1)]
          then $s else error("bad") end' "$1"
}

@test "snapshot mode: a restart is followed by the new process's snapshot" {
    # The new process's seqs 0-14 do not arrive live and its replay buffer
    # keeps 3: only its snapshot has them.
    start_peer peer --pub "ipc://$T/pub" --replay "ipc://$T/rep" \
        --snapshot "ipc://$T/snap" --stream-ids --count 30 --restart-after 10 \
        --withhold-new 0-14 --buffer 3 --wait-subs 1 --pod pod-a \
        --expect "$T/exp.ndjson"
    run_ndjson "$T/out.ndjson" kvsub -o now --idle 1500ms \
        "pod-a=ipc://$T/pub,ipc://$T/rep,ipc://$T/snap"
    assert_success
    run jq -c 'select(.type=="restart") | [.seq, .last_seq, .stream]' \
        "$T/out.ndjson"
    assert_output '[0,9,"a1a1a1a1a1a1a1a10001020304050607"]'
    run snapshot_taken "$T/out.ndjson" 19 15
    assert_success
    local s=$output
    run grep -c "^kvsub: warning: pod-a: snapshot at seq $s (the engine restarted)$" \
        <<<"$stderr"
    assert_output 1
    # The snapshot holds the new process's events up to its seq, in order.
    run diff <(jq -c --argjson s "$s" 'select(.type|test("^[A-Z]")) | select(.seq == $s and .stream == "a1a1a1a1a1a1a1a10001020304050607") | del(.seq, .i, .ts)' "$T/out.ndjson" | head -n "$(jq -c --argjson s "$s" 'select(.stream == "a1a1a1a1a1a1a1a10001020304050607" and .seq <= $s and (.type|test("^[A-Z]")))' "$T/exp.ndjson" | wc -l)") \
        <(jq -c --argjson s "$s" 'select(.stream == "a1a1a1a1a1a1a1a10001020304050607" and .seq <= $s and (.type|test("^[A-Z]"))) | del(.seq, .i, .ts)' "$T/exp.ndjson")
    assert_success
}

@test "snapshot mode: a hole replay cannot fill is replaced by a snapshot" {
    start_peer peer --pub "ipc://$T/pub" --replay "ipc://$T/rep" \
        --snapshot "ipc://$T/snap" --stream-ids --count 30 --withhold 10-14 \
        --buffer 2 --wait-subs 1 --pod pod-a --expect "$T/exp.ndjson"
    run_ndjson "$T/out.ndjson" kvsub -o now --idle 1500ms \
        "pod-a=ipc://$T/pub,ipc://$T/rep,ipc://$T/snap"
    assert_success
    run snapshot_taken "$T/out.ndjson" 29 15
    assert_success
    local s=$output
    run grep -c "^kvsub: warning: pod-a: snapshot at seq $s (replay cannot fill a gap)$" \
        <<<"$stderr"
    assert_output 1
    # Before the snapshot: batches 0-9 exactly as published.
    run diff <(jq -c 'select(.type=="snapshot_begin") as $x | empty' "$T/out.ndjson"; jq -c -s '(map(.type) | index("snapshot_begin")) as $b | .[:$b][]' "$T/out.ndjson") \
        <(jq -c 'select(.seq <= 9)' "$T/exp.ndjson")
    assert_success
}
