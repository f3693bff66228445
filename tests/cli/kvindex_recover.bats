#!/usr/bin/env bats
# kvindex coming back from a crash: a restored index resumes its streams
# exactly or says it cannot (docs/kvindex.md#resuming-after-a-restart), a
# snapshot is refused unless whole (docs/kvindex-snapshot.md#the-end-line),
# names that would not survive a round trip are refused at ingest
# (docs/kvindex.md#names), and js_seq skips what a snapshot holds.  kvpub
# plays the engine over ipc; every background process is killed in teardown.

load helpers
load kvindex_helpers
bats_require_minimum_version 1.5.0

setup() {
    T=$BATS_TEST_TMPDIR
    PIDS=()
    PUB=ipc://$T/pub
    REP=ipc://$T/rep
    S=$T/kv.sock
    SN=$T/snap.ndjson
}

teardown() {
    kill_pids
}

# Waits up to $2 seconds (of the clock, however slow each try is) until
# "$1" (a command) succeeds.
wait_until() {
    local end=$((SECONDS + $2))
    until eval "$1"; do
        if [ "$SECONDS" -ge "$end" ]; then
            echo "# timed out: $1" >&3
            return 1
        fi
        sleep 0.1
    done
}

# The last_seq of pod-a on socket $1 (-1 before its first line).
last_seq() {
    kvindex pods -r -s "$1" 2>/dev/null |
        jq '[.pods[] | select(.pod == "pod-a") | .last_seq][0] // -1'
}

# The last_seq of pod-a in snapshot file $1 (renamed into place whole), or
# -1.
snap_seq() {
    [ -s "$1" ] || {
        echo -1
        return
    }
    jq -s '[.[] | select(.type == "pod") | .last_seq][0] // -1' "$1"
}

# kvsub | kvindex serve on socket $1, through a fifo so that each has its
# own pid: sets SUB and IDX.  More arguments go to kvindex serve.
start_pipe() {
    local sock=$1
    shift
    rm -f "$T/fifo.$sock_n"
    sock_n=$((sock_n + 1))
    mkfifo "$T/fifo.$sock_n"
    kvindex serve -s "$sock" --max-blocks 10000000 "$@" \
        <"$T/fifo.$sock_n" 2>>"$T/idx.$(basename "$sock").err" &
    IDX=$!
    kvsub -m llama pod-a="$PUB,$REP" >"$T/fifo.$sock_n" \
        2>>"$T/sub.$(basename "$sock").err" &
    SUB=$!
    PIDS+=("$IDX" "$SUB")
    kvindex ping -s "$sock" -t 10s >/dev/null
}

# Runs kvpub (the engine, $1 batches) with KVPUB_ARGS, a never-crashed index
# on $T/ref.sock and one on $S with snapshots every second; kills the
# latter with -9 once its snapshot holds seq $2 or later; waits until the
# engine is $3 batches past it; restarts the pipeline on the same snapshot.
# Sets LAST (the snapshot's seq) and N.
crash_and_restart() {
    N=$1
    kvpub --synth "$N" --rate 500/s --wait-subs 1 --hold 120s "${KVPUB_ARGS[@]}" \
        "$PUB" "$REP" </dev/null 2>"$T/kvpub.err" &
    PIDS+=($!)
    sock_n=0
    start_pipe "$T/ref.sock"
    start_pipe "$S" --snapshot "$SN" --snapshot-every 1s
    wait_until '[ "$(snap_seq "$SN")" -ge '"$2"' ]' 90
    kill -9 "$IDX"
    kill "$SUB" 2>/dev/null || true
    wait "$IDX" 2>/dev/null || true
    wait "$SUB" 2>/dev/null || true
    # A snapshot writer forked before the kill may still rename its file.
    sleep 0.5
    LAST=$(snap_seq "$SN")
    [ "$LAST" -ge "$2" ]
    wait_until '[ "$(last_seq "$T/ref.sock")" -ge $((LAST + '"$3"')) ]' 90
    start_pipe "$S" --snapshot "$SN" --snapshot-every 1s
}

@test "kill -9 and restart while the engine's buffer covers the downtime: the dump equals a never-crashed index's" {
    skip_under_tsan "the snapshot does not reach its seq within the wait"
    # The buffer (3000) no longer reaches seq 0 when the pipeline restarts
    # (kvsub's first line is a gap record from 0), but it reaches back past
    # the snapshot: the history since then is all there.
    KVPUB_ARGS=(--buffer 3000)
    crash_and_restart 6000 3200 400
    wait_until '[ "$(last_seq "$T/ref.sock")" = $((N - 1)) ]' 90
    wait_until '[ "$(last_seq "$S")" = $((N - 1)) ]' 90
    kvindex dump -s "$T/ref.sock" >"$T/ref.dump"
    kvindex dump -s "$S" >"$T/restored.dump"
    [ "$(grep -c '"type":"entry"' "$T/ref.dump")" -gt 100 ]
    run cmp "$T/ref.dump" "$T/restored.dump"
    assert_success
    run kvindex stats -r -s "$S"
    # The restarted kvsub replayed the buffer: the restored index skipped
    # the lines up to its snapshot's seq, the gap record among them.
    [ "$(echo "$output" | jq .resume_skipped)" -gt 0 ]
    grep -q 'gap 0\.\.' "$T/sub.kv.sock.err"
    run kvindex pods -r -s "$S"
    assert_output --partial '"degraded":false'
    run grep -c 'degraded' "$T/idx.kv.sock.err"
    assert_output 0
}

@test "kill -9 and restart after the engine's buffer moved on: the pod is degraded, with one warning" {
    skip_under_tsan "the snapshot does not reach its seq within the wait"
    KVPUB_ARGS=(--buffer 100)
    crash_and_restart 4000 500 400
    wait_until '[ "$(last_seq "$S")" -gt "$LAST" ]' 60
    run kvindex pods -r -s "$S"
    assert_output --partial '"pod":"pod-a","dp_rank":0,'
    assert_output --partial '"degraded":true'
    # Exactly one warning about the missing seqs.  (Orphaned stores may
    # degrade the pod too, with their own warning, when a loaded machine
    # started kvsub after the 100-batch buffer had moved on: that is
    # timing, not what this test is about.)
    run grep 'degraded: seqs' "$T/idx.kv.sock.err"
    assert_output --regexp "^kvindex: warning: pod-a \(dp_rank 0\): degraded: seqs $((LAST + 1))\.\.[0-9]+ after the snapshot's seq $LAST are missing: its entries may be stale\$"
    wait_until '[ "$(last_seq "$S")" = $((N - 1)) ]' 90
    run kvindex pods -r -s "$S"
    assert_output --partial '"degraded":true'
}

# 2048 one-block root stores of pod-a, seqs 1..2048, js_seq 1..2048.
stores() {
    local from=${1:-1} to=${2:-2048}
    seq "$from" "$to" | awk '{ printf "{\"pod\":\"pod-a\",\"model\":\"llama\",\"dp_rank\":0,\"seq\":%d,\"i\":0,\"ts\":%d,\"type\":\"BlockStored\",\"block_hashes\":[\"%d\"],\"parent_block_hash\":null,\"token_ids\":[%d,1,2,3],\"block_size\":4,\"js_seq\":%d}\n", $1, 1700000000 + $1, $1, $1, $1 }'
}

# Serves input file $1 with snapshot $2 until every line is read, then
# stops it (SIGTERM writes the final snapshot).
snapshot_of() {
    kvindex serve -s "$S" --max-blocks 10000000 --snapshot "$2" "$1" \
        2>"$T/serve.err" &
    local pid=$!
    PIDS+=($pid)
    kvindex ping -s "$S" -t 10s >/dev/null
    wait_lines "$(wc -l <"$1")"
    kill "$pid"
    wait "$pid" || true
}

# XXH64 (seed 0) of stdin in hex, written from the specification so that
# the end line is checked by a second implementation.
xxh64() {
    "$PY" -c '
import sys
P1, P2, P3, P4, P5 = 11400714785074694791, 14029467366897019727, 1609587929392839161, 9650029242287828579, 2870177450012600261
M = (1 << 64) - 1
rotl = lambda x, r: ((x << r) | (x >> (64 - r))) & M
def rnd(acc, v): return (rotl((acc + v * P2) & M, 31) * P1) & M
def merge(acc, v): return (((acc ^ rnd(0, v)) * P1) + P4) & M
d = sys.stdin.buffer.read(); n = len(d); i = 0
if n >= 32:
    v = [(P1 + P2) & M, P2, 0, (-P1) & M]
    while i + 32 <= n:
        for k in range(4):
            v[k] = rnd(v[k], int.from_bytes(d[i:i + 8], "little")); i += 8
    h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & M
    for k in range(4): h = merge(h, v[k])
else:
    h = P5
h = (h + n) & M
while i + 8 <= n:
    h = (rotl(h ^ rnd(0, int.from_bytes(d[i:i + 8], "little")), 27) * P1 + P4) & M; i += 8
if i + 4 <= n:
    h = (rotl(h ^ (int.from_bytes(d[i:i + 4], "little") * P1 & M), 23) * P2 + P3) & M; i += 4
while i < n:
    h = (rotl(h ^ (d[i] * P5 & M), 11) * P1) & M; i += 1
h ^= h >> 33; h = h * P2 & M; h ^= h >> 29; h = h * P3 & M; h ^= h >> 32
print("%016x" % h)'
}

@test "a snapshot cut at a line boundary is refused, naming the file and why" {
    stores >"$T/in.ndjson"
    snapshot_of "$T/in.ndjson" "$SN"
    [ "$(grep -c '"type":"entry"' "$SN")" = 2048 ]
    run tail -1 "$SN"
    assert_output --regexp '^\{"type":"end","entries":2048,"xxh64":"[0-9a-f]{16}"\}$'
    head -n 1027 "$SN" >"$T/cut.ndjson"
    run --separate-stderr kvindex serve --exit-on-eof -s "$S" --snapshot "$T/cut.ndjson" </dev/null
    assert_failure 1
    assert_equal "$stderr" "kvindex: error: $T/cut.ndjson: no end line: the file is cut short (1024 entries read)"
    head -n -1 "$SN" >"$T/cut.ndjson"
    run --separate-stderr kvindex serve --exit-on-eof -s "$S" --snapshot "$T/cut.ndjson" </dev/null
    assert_failure 1
    assert_equal "$stderr" "kvindex: error: $T/cut.ndjson: no end line: the file is cut short (2048 entries read)"
    sed 's/"block_hash":"77"/"block_hash":"78"/' "$SN" >"$T/bad.ndjson"
    run --separate-stderr kvindex serve --exit-on-eof -s "$S" --snapshot "$T/bad.ndjson" </dev/null
    assert_failure 1
    assert_equal "$stderr" "kvindex: error: $T/bad.ndjson: line 2052: checksum mismatch (xxh64 $(tail -1 "$SN" | jq -r .xxh64) in the end line, $(head -n -1 "$T/bad.ndjson" | xxh64) of the bytes before it): the file is damaged"
}

# serve_stores N: serves stores 1..N from a file and waits until all are in.
serve_stores() {
    stores 1 "$1" >"$T/in.ndjson"
    kvindex serve -s "$S" --max-blocks 10000000 "$T/in.ndjson" 2>/dev/null &
    PIDS+=($!)
    kvindex ping -s "$S" -t 10s >/dev/null
    wait_lines "$1"
}

@test "kvindex dump ends with the end line; a dump loads back as a snapshot" {
    serve_stores 50
    kvindex dump -s "$S" >"$T/d.ndjson"
    run tail -1 "$T/d.ndjson"
    assert_output --regexp '^\{"type":"end","entries":50,"xxh64":"[0-9a-f]{16}"\}$'
    # The checksum is XXH64 (seed 0) of every byte before the end line.
    want=$(head -n -1 "$T/d.ndjson" | xxh64)
    [ "$(tail -1 "$T/d.ndjson" | jq -r .xxh64)" = "$want" ]
    kill_pids
    PIDS=()
    kvindex serve -s "$S" --max-blocks 10000000 --snapshot "$T/d.ndjson" </dev/null 2>/dev/null &
    PIDS+=($!)
    kvindex ping -s "$S" -t 10s >/dev/null
    run cmp "$T/d.ndjson" <(kvindex dump -s "$S")
    assert_success
}

@test "kvindex dump prints the lines as they come: its memory stays far below the dump's size" {
    skip_under_tsan "its shadow memory is part of the client's RSS"
    serve_stores 200000
    # The client's peak RSS (KiB), next to the dump's size.
    rss=$("$PY" - "$T/d.ndjson" "$S" <<'EOF2'
import resource, subprocess, sys
with open(sys.argv[1], "wb") as f:
    subprocess.run(["kvindex", "dump", "-s", sys.argv[2], "-t", "60s"],
                   stdout=f, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
EOF2
)
    size=$(($(wc -c <"$T/d.ndjson") / 1024))
    echo "client peak RSS ${rss} KiB, dump ${size} KiB"
    [ "$size" -gt 20000 ]
    [ "$rss" -lt $((size / 2)) ]
    run tail -1 "$T/d.ndjson"
    assert_output --regexp '^\{"type":"end","entries":200000,"xxh64":"[0-9a-f]{16}"\}$'
    [ "$(tail -1 "$T/d.ndjson" | jq -r .xxh64)" = "$(head -n -1 "$T/d.ndjson" | xxh64)" ]
    # A reader that leaves early ends the dump quietly with 0.
    run --separate-stderr bash -c 'kvindex dump -s "$1" | head -n 1; exit "${PIPESTATUS[0]}"' _ "$S"
    assert_success
    assert_output "$(head -n 1 "$T/d.ndjson")"
    assert_equal "$stderr" ""
}

# fake_server REPLY: a Unix socket server at $S that answers one request
# with the bytes of REPLY (Python escapes) and closes.
fake_server() {
    "$PY" - "$S" "$1" <<'EOF2' &
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(1)
c, _ = s.accept()
c.makefile("rb").readline()
c.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
c.close()
EOF2
    PIDS+=($!)
    for _ in $(seq 200); do [ -S "$S" ] && return 0; sleep 0.05; done
    return 1
}

@test "kvindex dump: an error reply, a malformed dump and one cut short exit 1 and say so" {
    fake_server '{"ok":false,"error":"boom"}\n'
    run --separate-stderr kvindex dump -s "$S"
    assert_failure 1
    assert_output ''
    assert_equal "$stderr" "kvindex: error: boom"
    kill_pids
    rm -f "$S"
    fake_server '{"id":null,"ok":true,"data":{"lines":[{"type":"header"},x]}}\n'
    run --separate-stderr kvindex dump -s "$S"
    assert_failure 1
    assert_output '{"type":"header"}'
    assert_equal "$stderr" "kvindex: error: malformed dump reply (after 1 lines)"
    kill_pids
    rm -f "$S"
    fake_server '{"id":null,"ok":true,"data":{"lines":[{"type":"header","s":"a}\\\"]"},{"ty'
    run --separate-stderr kvindex dump -s "$S"
    assert_failure 1
    assert_output '{"type":"header","s":"a}\"]"}'
    assert_equal "$stderr" "kvindex: error: the server closed the connection"
}

@test "temporary files a killed writer left are removed at start; a live writer's stay" {
    echo partial >"$SN.tmp.2147483646"
    echo live >"$SN.tmp.$$"
    ln -s /dev/null "$SN.tmp.2147483645"
    echo other >"$SN.tmpx.2147483646"
    kvindex serve -v -s "$S" --snapshot "$SN" </dev/null 2>"$T/err" &
    PIDS+=($!)
    kvindex ping -s "$S" -t 10s >/dev/null
    [ ! -e "$SN.tmp.2147483646" ]
    [ -e "$SN.tmp.$$" ]
    [ -L "$SN.tmp.2147483645" ]
    [ -e "$SN.tmpx.2147483646" ]
    run grep 'temporary' "$T/err"
    assert_output "kvindex: info: $SN: removed 1 temporary file a killed writer left"
}

@test "js_seq: a snapshot records the highest applied; an overlapping restart skips what it holds" {
    stores 1 1000 >"$T/all.ndjson"
    stores 1 600 >"$T/head.ndjson"
    stores 590 1000 >"$T/tail.ndjson"
    snapshot_of "$T/head.ndjson" "$SN"
    run head -1 "$SN"
    assert_output '{"type":"kvindex_snapshot","version":2,"hash":"aibrix","seed":"0","hash_seed":"","js_seq":600}'
    snapshot_of "$T/all.ndjson" "$T/all.snap"
    kvindex serve -s "$S" --max-blocks 10000000 --snapshot "$SN" "$T/tail.ndjson" 2>"$T/err" &
    PIDS+=($!)
    kvindex ping -s "$S" -t 10s >/dev/null
    wait_lines 411
    run kvindex stats -r -s "$S"
    [ "$(echo "$output" | jq -c '[.js_seq, .js_skipped, .resume_skipped]')" = '[1000,11,0]' ]
    kvindex dump -s "$S" >"$T/d.ndjson"
    run cmp "$T/all.snap" "$T/d.ndjson"
    assert_success
    stores 1 5 | sed 's/,"js_seq":[0-9]*//' >"$T/plain.ndjson"
    kill_pids
    PIDS=()
    kvindex serve -s "$S" "$T/plain.ndjson" 2>/dev/null &
    PIDS+=($!)
    kvindex ping -s "$S" -t 10s >/dev/null
    wait_lines 5
    run kvindex stats -r -s "$S"
    [ "$(echo "$output" | jq -c '[.js_seq, .js_skipped]')" = '[null,0]' ]
    run kvindex dump -s "$S"
    assert_line --index 0 '{"type":"kvindex_snapshot","version":2,"hash":"aibrix","seed":"0","hash_seed":""}'
}

@test "names that are not valid UTF-8 or hold U+0000 are rejected and counted; a round trip keeps every answer" {
    good='"dp_rank":0,"seq":1,"i":0,"ts":1,"type":"BlockStored","block_hashes":["1"],"parent_block_hash":null,"token_ids":[1,2,3,4],"block_size":4'
    {
        printf '{"pod":"a\xffb","model":"m",%s}\n' "$good"
        printf '{"pod":"x\\u0000y","model":"m",%s}\n' "$good"
        printf '{"pod":"p1","model":"m\xc0\xaf",%s}\n' "$good"
        printf '{"pod":"p2","model":"m\\u0000n",%s}\n' "$good"
        printf '{"pod":"p3","model":"m",%s,"lora_name":"l\xed\xa0\x80"}\n' "$good"
        printf '{"pod":"p4","model":"m",%s,"lora_name":"l\\u0000"}\n' "$good"
        printf '{"pod":"p\xc3\xa9","model":"m",%s,"lora_name":"l\\u00e9"}\n' "$good"
    } >"$T/in.ndjson"
    kvindex serve -s "$S" --snapshot "$SN" "$T/in.ndjson" 2>"$T/serve.err" &
    local pid=$!
    PIDS+=($pid)
    kvindex ping -s "$S" -t 10s >/dev/null
    wait_lines 7
    run kvindex stats -r -s "$S"
    [ "$(echo "$output" | jq -c .rejected)" = '{"orphan":0,"misaligned":0,"block_size":0,"invalid":0,"nomem":0,"bad_name":6}' ]
    kill "$pid"
    wait "$pid" || true
    run cat "$T/serve.err"
    assert_output "kvindex: warning: $T/in.ndjson:1: a pod, model, LoRA or medium name that is not valid UTF-8 or holds U+0000: rejected
kvindex: warning: $T/in.ndjson:2: a pod, model, LoRA or medium name that is not valid UTF-8 or holds U+0000: rejected
kvindex: warning: $T/in.ndjson:3: a pod, model, LoRA or medium name that is not valid UTF-8 or holds U+0000: rejected
kvindex: warning: $T/in.ndjson:4: a pod, model, LoRA or medium name that is not valid UTF-8 or holds U+0000: rejected
kvindex: warning: $T/in.ndjson:5: a pod, model, LoRA or medium name that is not valid UTF-8 or holds U+0000: rejected
kvindex: warning: $T/in.ndjson:6: a pod, model, LoRA or medium name that is not valid UTF-8 or holds U+0000: rejected"
    kvindex serve -s "$S" --snapshot "$SN" </dev/null 2>/dev/null &
    PIDS+=($!)
    kvindex ping -s "$S" -t 10s >/dev/null
    run kvindex dump -s "$S"
    assert_line --index 1 '{"type":"namespace","model":"m","lora_name":"lé","block_size":4}'
    assert_line --index 7 '{"type":"entry","pod":"pé","dp_rank":0,"model":"m","lora_name":"lé","block_size":4,"block_hash":"1","key":"3016830673298551182","media":["GPU"]}'
    [ "${#lines[@]}" = 9 ]
    run kvindex pods -r -s "$S"
    assert_output '{"pods":[{"pod":"p1","dp_rank":0,"blocks":0,"last_seq":1,"last_ts":1,"degraded":false,"orphans":0,"misaligned":0},{"pod":"p2","dp_rank":0,"blocks":0,"last_seq":1,"last_ts":1,"degraded":false,"orphans":0,"misaligned":0},{"pod":"p3","dp_rank":0,"blocks":0,"last_seq":1,"last_ts":1,"degraded":false,"orphans":0,"misaligned":0},{"pod":"p4","dp_rank":0,"blocks":0,"last_seq":1,"last_ts":1,"degraded":false,"orphans":0,"misaligned":0},{"pod":"pé","dp_rank":0,"blocks":1,"last_seq":1,"last_ts":1,"degraded":false,"orphans":0,"misaligned":0}]}'
    run cmp "$SN" <(kvindex dump -s "$S")
    assert_success
}
