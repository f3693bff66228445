#!/usr/bin/env bats
# kvindex serve's input with and without its reader thread
# (docs/kvindex.md#reading-the-input): the same index, the same stats and
# the same stderr, in the same order.

load helpers

setup() {
    S=$BATS_TEST_TMPDIR/kv.sock
    T=$BATS_TEST_TMPDIR
}

# Writes $T/a.ndjson, $T/b.ndjson and $T/c.ndjson: stores, removals and
# clears of 8 pods over several batches of the reader, with bad lines,
# over-long lines, blank lines, orphans and a name that is not UTF-8 among
# them.
gen_inputs() {
    "$PY" - "$T" <<'PY'
import json, sys
out = []
known = {}
def line(d):
    out.append(json.dumps(d, separators=(",", ":")).encode())
for n in range(6000):
    pod = "p%d" % (n % 8)
    seq = n // 8 + 1
    env = {"pod": pod, "dp_rank": 0, "seq": seq, "i": 0, "ts": 1.5}
    h = known.setdefault(pod, [])
    if n % 997 == 0:
        out.append(b"{not json")
    elif n % 1499 == 0:
        out.append(b'{"pod":"p","pad":"' + b"x" * 3000 + b'"}')
    elif n % 701 == 0:
        out.append(b"")
    elif n % 1201 == 0:
        out.append(b'{"pod":"\xff","seq":1,"i":0,"type":"AllBlocksCleared"}')
    elif n % 613 == 0:
        line(dict(env, type="BlockStored", block_hashes=[str(10**9 + n)],
                  parent_block_hash="999999999999", block_size=4,
                  token_ids=[1, 2, 3, 4], pod="orphans"))
    elif n % 53 == 0 and h:
        line(dict(env, type="BlockRemoved", block_hashes=[h.pop()],
                  medium="GPU"))
    elif n % 911 == 0:
        h.clear()
        line(dict(env, type="AllBlocksCleared"))
    else:
        k = str(n + 1)
        line(dict(env, type="BlockStored", block_hashes=[k],
                  parent_block_hash=h[-1] if h else None, block_size=4,
                  token_ids=[n % 50, 7, n % 13, 9], medium="GPU"))
        h.append(k)
d = sys.argv[1]
for name, part in (("a", out[:2000]), ("b", out[2000:4100]), ("c", out[4100:])):
    with open("%s/%s.ndjson" % (d, name), "wb") as f:
        f.write(b"\n".join(part) + b"\n")
PY
}

# Runs serve over a.ndjson, stdin (c.ndjson) and b.ndjson with the reader
# thread $1; its stderr goes to $T/err.$1 (the stats line without its
# uptime), its index to $T/snap.$1.
serve_inputs() {
    KVINDEX_READER_THREAD=$1 kvindex serve -s "$S.$1" --exit-on-eof --stats \
        --max-line 2000 --degraded-orphans 3 --snapshot "$T/snap.$1" \
        "$T/a.ndjson" - "$T/b.ndjson" <"$T/c.ndjson" 2>"$T/raw.$1" 3>&-
    sed 's/"uptime_s":[0-9.e+-]*,//' "$T/raw.$1" >"$T/err.$1"
}

@test "with and without the reader thread: the same index, stats and stderr" {
    gen_inputs
    serve_inputs off
    serve_inputs on
    cmp "$T/snap.off" "$T/snap.on"
    run diff "$T/err.off" "$T/err.on"
    assert_success
    # What both said, in line order across the three inputs, and the
    # counts of the stats line.
    run head -n -1 "$T/err.on"
    assert_output "kvindex: warning: $T/a.ndjson:1: invalid JSON: expected a string key at byte 2
kvindex: warning: $T/a.ndjson:2: events without \"model\" and no -m: they are indexed under the model \"\" (give kvsub -m or kvindex serve -m)
kvindex: warning: $T/a.ndjson:998: invalid JSON: expected a string key at byte 2
kvindex: warning: $T/a.ndjson:1202: a pod, model, LoRA or medium name that is not valid UTF-8 or holds U+0000: rejected
kvindex: warning: $T/a.ndjson:1500: line longer than --max-line (2000 bytes), skipped
kvindex: warning: $T/a.ndjson:1995: invalid JSON: expected a string key at byte 2
kvindex: warning: p4 (dp_rank 0): degraded: 4 orphaned stores since its last clear or restart (--degraded-orphans 3): its matches may be short
kvindex: warning: p5 (dp_rank 0): degraded: 4 orphaned stores since its last clear or restart (--degraded-orphans 3): its matches may be short
kvindex: warning: p6 (dp_rank 0): degraded: 4 orphaned stores since its last clear or restart (--degraded-orphans 3): its matches may be short
kvindex: warning: p7 (dp_rank 0): degraded: 4 orphaned stores since its last clear or restart (--degraded-orphans 3): its matches may be short
kvindex: warning: p0 (dp_rank 0): degraded: 4 orphaned stores since its last clear or restart (--degraded-orphans 3): its matches may be short
kvindex: warning: p1 (dp_rank 0): degraded: 4 orphaned stores since its last clear or restart (--degraded-orphans 3): its matches may be short
kvindex: warning: p2 (dp_rank 0): degraded: 4 orphaned stores since its last clear or restart (--degraded-orphans 3): its matches may be short
kvindex: warning: p3 (dp_rank 0): degraded: 4 orphaned stores since its last clear or restart (--degraded-orphans 3): its matches may be short
kvindex: warning: orphans (dp_rank 0): degraded: 4 orphaned stores since its last clear or restart (--degraded-orphans 3): its matches may be short
kvindex: warning: stdin:398: line longer than --max-line (2000 bytes), skipped
kvindex: warning: stdin:705: a pod, model, LoRA or medium name that is not valid UTF-8 or holds U+0000: rejected
kvindex: warning: stdin:886: invalid JSON: expected a string key at byte 2
kvindex: warning: stdin:1883: invalid JSON: expected a string key at byte 2
kvindex: warning: stdin:1897: line longer than --max-line (2000 bytes), skipped
kvindex: warning: p2 (dp_rank 0): degraded: 4 orphaned stores since its last clear or restart (--degraded-orphans 3): its matches may be short
kvindex: warning: p3 (dp_rank 0): degraded: 4 orphaned stores since its last clear or restart (--degraded-orphans 3): its matches may be short
kvindex: warning: $T/b.ndjson:403: a pod, model, LoRA or medium name that is not valid UTF-8 or holds U+0000: rejected
kvindex: warning: $T/b.ndjson:992: invalid JSON: expected a string key at byte 2
kvindex: warning: $T/b.ndjson:999: line longer than --max-line (2000 bytes), skipped
kvindex: warning: $T/b.ndjson:1604: a pod, model, LoRA or medium name that is not valid UTF-8 or holds U+0000: rejected
kvindex: warning: $T/b.ndjson:1989: invalid JSON: expected a string key at byte 2"
    run jq -c '{lines, bad_lines, long_lines, entries, events: .events | {BlockStored, BlockRemoved, AllBlocksCleared}, rejected}' <(tail -n 1 "$T/err.on")
    assert_output '{"lines":6000,"bad_lines":7,"long_lines":4,"entries":2087,"events":{"BlockStored":3724,"BlockRemoved":113,"AllBlocksCleared":6},"rejected":{"orphan":2134,"misaligned":0,"block_size":0,"invalid":0,"nomem":0,"bad_name":4}}'
}

@test "reader thread: a file that cannot be opened stops serve after the lines before it" {
    printf '{"pod":"a","seq":1,"i":0,"type":"AllBlocksCleared"}\n{bad\n' >"$T/one.ndjson"
    for m in on off; do
        run kvindex serve -s "$S.$m" --reader-thread "$m" --exit-on-eof \
            "$T/one.ndjson" "$T/missing.ndjson" 3>&-
        assert_failure 1
        assert_output "kvindex: warning: $T/one.ndjson:2: invalid JSON: expected a string key at byte 2
kvindex: error: $T/missing.ndjson: No such file or directory"
    done
}

@test "reader thread: an unknown format version stops serve at its line" {
    printf '{"pod":"a","seq":1,"i":0,"type":"AllBlocksCleared"}\n{"type":"format","version":99}\n{"pod":"a","seq":2,"i":0,"type":"AllBlocksCleared"}\n' >"$T/v.ndjson"
    for m in on off; do
        run kvindex serve -s "$S.$m" --reader-thread "$m" --exit-on-eof "$T/v.ndjson" 3>&-
        assert_failure 1
        assert_output "kvindex: error: $T/v.ndjson:2: unsupported NDJSON format version 99"
    done
}

@test "--reader-thread and KVINDEX_READER_THREAD take auto, on or off" {
    run kvindex serve -s "$S" --reader-thread 2 </dev/null
    assert_failure 2
    assert_line --index 0 "kvindex: --reader-thread: '2' is not auto, on or off"
    KVINDEX_READER_THREAD=yes run kvindex serve -s "$S" </dev/null
    assert_failure 2
    assert_line --index 0 "kvindex: KVINDEX_READER_THREAD: 'yes' is not auto, on or off"
}

@test "reader thread: SIGTERM stops serve while its input stays open" {
    mkfifo "$T/fifo"
    exec 4<>"$T/fifo"
    printf '{"pod":"a","seq":1,"i":0,"type":"AllBlocksCleared"}\n' >&4
    kvindex serve -s "$S" --reader-thread on --stats <"$T/fifo" 2>"$T/err" 3>&- &
    pid=$!
    for _ in $(seq 200); do
        [ "$(kvindex stats -r -s "$S" 2>/dev/null | jq .lines)" = 1 ] && break
        sleep 0.05
    done
    kill -TERM "$pid"
    rc=0
    wait_pid "$pid" 10 || rc=$?
    exec 4>&-
    assert_equal "$rc" 0
    run jq -c '{lines, bad_lines}' <(tail -n 1 "$T/err")
    assert_output '{"lines":1,"bad_lines":0}'
}

@test "--reader-thread auto: a thread for files; for a pipe, none on two CPUs; -v says which" {
    printf '{"pod":"a","seq":1,"i":0,"type":"AllBlocksCleared"}\n' >"$T/one.ndjson"
    thread="on a thread of its own"
    loop="in the server's loop"
    cpus=$(getconf _NPROCESSORS_ONLN)
    files=$thread
    piped=$loop
    if [ "$cpus" -lt 2 ]; then
        files=$loop
    elif [ "$cpus" -gt 2 ]; then
        piped=$thread
    fi
    # auto is given on the command line, which wins over a
    # KVINDEX_READER_THREAD in the environment (tsan-check sets it to on).
    run kvindex serve -v -s "$S.1" --reader-thread auto --exit-on-eof \
        "$T/one.ndjson" "$T/one.ndjson" 3>&-
    assert_success
    assert_line --index 0 "kvindex: info: listening on $S.1"
    assert_line --index 1 "kvindex: info: reading the input $files"
    # stdin redirected from a file is a file.
    run kvindex serve -v -s "$S.2" --reader-thread auto --exit-on-eof \
        <"$T/one.ndjson" 3>&-
    assert_line --index 1 "kvindex: info: reading the input $files"
    run sh -c 'cat "$1" | kvindex serve -v -s "$2" --reader-thread auto \
        --exit-on-eof 3>&-' _ "$T/one.ndjson" "$S.3"
    assert_success
    assert_line --index 1 "kvindex: info: reading the input $piped"
    # One input that is not a file is enough.
    run sh -c 'cat "$1" | kvindex serve -v -s "$2" --reader-thread auto \
        --exit-on-eof "$1" - 3>&-' _ "$T/one.ndjson" "$S.4"
    assert_line --index 1 "kvindex: info: reading the input $piped"
    # on and off decide whatever the input.
    run sh -c 'cat "$1" | KVINDEX_READER_THREAD=on kvindex serve -v -s "$2" \
        --exit-on-eof 3>&-' _ "$T/one.ndjson" "$S.5"
    assert_line --index 1 "kvindex: info: reading the input $thread"
    run kvindex serve -v -s "$S.6" --reader-thread off --exit-on-eof "$T/one.ndjson" 3>&-
    assert_line --index 1 "kvindex: info: reading the input $loop"
}
