#!/usr/bin/env bash
# kvtap through NATS JetStream (kvjs) next to the direct pipe, same run:
# one nats-server (JetStream, file storage in a temp dir, loopback port)
# and one NDJSON capture of KVJS_BATCHES batches (default 50000, two
# events each; what kvsub writes) fed to
#   direct  kvindex serve --exit-on-eof < capture        (the baseline)
#   pub     kvjs pub < capture, until every batch is acknowledged
#   sub     kvjs sub | kvindex serve --exit-on-eof       (stream -> index)
#   e2e     kvjs pub < capture while kvjs sub --follow | kvindex serve
#           runs, until the index applied the last batch
# and prints events/s of each with its ratio to direct; then
#   lag     publish -> apply: KVJS_LAG_RATE batches/s (default 2000) for
#           5 s written into kvjs pub, each timed until the index that
#           kvjs sub --follow feeds reports it applied (a client polls
#           the index's pods every 0.2 ms), p50/p99/max;
#   warm    time to ready of a replica that starts from a snapshot in
#           JetStream (the index after 90% of the capture) and the
#           stream's tail, next to one that replays the whole stream;
#           both must end with the same dump.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${KVTAP_BIN:=$here/../bin}"
export PATH="$KVTAP_BIN:$PATH"
PY=/usr/bin/python3
n=${KVJS_BATCHES:-50000}
rate=${KVJS_LAG_RATE:-2000}
tmp=$(mktemp -d)
pids=
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

port=$("$PY" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=nats://127.0.0.1:$port
nats-server -js -a 127.0.0.1 -p "$port" -sd "$tmp/js" >"$tmp/nats.log" 2>&1 &
pids="$! $pids"
until kvjs info -q -s "$url" --connect-retries 1 --stream NO_SUCH 2>&1 |
    grep -q 'not found'; do sleep 0.1; done

# Batch s goes to pod s % 4 as that pod's seq s / 4: each engine numbers
# its own batches without holes, as the resume check after a snapshot
# expects (docs/kvindex.md#resuming-after-a-restart); one counter shared
# by the four pods would leave holes that degrade a restored replica.
awk -v n="$n" 'BEGIN {
    for (s = 0; s < n; s++) {
        p = "pod-" (s % 4); q = int(s / 4)
        printf "{\"pod\":\"%s\",\"dp_rank\":0,\"seq\":%d,\"i\":0,\"ts\":%d.25,\"type\":\"BlockStored\",\"block_hashes\":[\"%d\",\"%d\"],\"parent_block_hash\":null,\"token_ids\":[%d,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31],\"block_size\":16,\"lora_id\":null,\"medium\":\"GPU\"}\n", p, q, 1700000000 + s, 2 * s + 1, 2 * s + 2, s
        printf "{\"pod\":\"%s\",\"dp_rank\":0,\"seq\":%d,\"i\":1,\"ts\":%d.25,\"type\":\"BlockRemoved\",\"block_hashes\":[\"%d\"],\"medium\":\"GPU\"}\n", p, q, 1700000000 + s, 2 * s - 1
    }
}' >"$tmp/cap.ndjson"
events=$((2 * n))

now() { date +%s.%N; }
rate_of() { awk -v e="$events" -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", e / (b - a) }'; }

t0=$(now)
kvindex serve -q --exit-on-eof -s "$tmp/d.sock" <"$tmp/cap.ndjson"
t1=$(now)
direct=$(rate_of "$t0" "$t1")

t0=$(now)
kvjs pub -q -s "$url" --stream B1 --prefix b1 <"$tmp/cap.ndjson"
t1=$(now)
pub=$(rate_of "$t0" "$t1")

t0=$(now)
kvjs sub -q -s "$url" --stream B1 --prefix b1 |
    kvindex serve -q --exit-on-eof -s "$tmp/s.sock"
t1=$(now)
sub=$(rate_of "$t0" "$t1")

# Starts a replica: kvjs sub --stream $2 --follow [ARG...] into kvindex
# serve -s $tmp/$1.sock with the options $3 (word-split), and waits until
# the index answers.  The stream's prefix is its name in lower case.
follow_into() {
    local name=$1 stream=$2 iopts=$3
    shift 3
    mkfifo "$tmp/$name.in"
    # shellcheck disable=SC2086
    kvindex serve -q -s "$tmp/$name.sock" $iopts <"$tmp/$name.in" &
    pids="$! $pids"
    kvjs sub -q -s "$url" --stream "$stream" --prefix "${stream,,}" \
        --follow "$@" >"$tmp/$name.in" &
    pids="$! $pids"
    kvindex ping -s "$tmp/$name.sock" -t 60s >/dev/null
}

# Waits until the index on $tmp/$1.sock applied the capture's last batch:
# pod (n - 1) % 4's seq (n - 1) / 4.
wait_last() {
    until kvindex pods -r -s "$tmp/$1.sock" | jq -e \
        --arg p "pod-$(((n - 1) % 4))" --argjson s $(((n - 1) / 4)) \
        'any(.pods[]; .pod == $p and .last_seq == $s)' >/dev/null; do
        sleep 0.01
    done
}

# End to end: the reader is running before the first publish.
kvjs pub -q -s "$url" --stream B2 --prefix b2 </dev/null
follow_into e B2 ""
t0=$(now)
kvjs pub -q -s "$url" --stream B2 --prefix b2 <"$tmp/cap.ndjson"
wait_last e
t1=$(now)
e2e=$(rate_of "$t0" "$t1")

ratio() { awk -v a="$1" -v b="$direct" 'BEGIN { printf "%.2f", a / b }'; }
echo "events: $events ($n batches, 4 pods)"
echo "direct  kvindex < capture:          $direct events/s"
echo "pub     kvjs pub (all acked):       $pub events/s  ratio $(ratio "$pub")"
echo "sub     kvjs sub | kvindex:         $sub events/s  ratio $(ratio "$sub")"
echo "e2e     kvjs pub -> sub | kvindex:  $e2e events/s  ratio $(ratio "$e2e")"

# Lag: each batch timed from its write into kvjs pub until the index
# that kvjs sub feeds says it applied it.
kvjs pub -q -s "$url" --stream B3 --prefix b3 </dev/null
follow_into l B3 ""
"$PY" - "$url" "$rate" "$tmp/l.sock" <<'PYEOF'
import json, socket, subprocess, sys, threading, time
url, rate, sock = sys.argv[1], int(sys.argv[2]), sys.argv[3]
pub = subprocess.Popen(["kvjs", "pub", "-q", "-s", url, "--stream", "B3",
                        "--prefix", "b3"], stdin=subprocess.PIPE, text=True,
                       bufsize=1)
total = rate * 5
sent, applied = [0.0] * total, [0.0] * total
def poller():
    c = socket.socket(socket.AF_UNIX)
    c.connect(sock)
    f = c.makefile("rb")
    done = -1
    while done < total - 1:
        c.sendall(b'{"op":"pods"}\n')
        now = time.monotonic()
        pods = json.loads(f.readline())["data"]["pods"]
        last = max([p["last_seq"] for p in pods if p["pod"] == "lag"] or [-1])
        for s in range(done + 1, last + 1):
            applied[s] = now
        done = max(done, last)
        time.sleep(0.0002)
t = threading.Thread(target=poller, daemon=True)
t.start()
start = time.monotonic()
for s in range(total):
    d = start + s / rate - time.monotonic()
    if d > 0:
        time.sleep(d)
    sent[s] = time.monotonic()
    pub.stdin.write('{"pod":"lag","dp_rank":0,"seq":%d,"i":0,"ts":%d,'
                    '"type":"AllBlocksCleared"}\n' % (s, s))
    pub.stdin.flush()
t.join(60)
pub.stdin.close()
pub.wait()
if t.is_alive():
    print("lag: the index did not apply all %d batches" % total)
    sys.exit(1)
# A batch counts as applied when the first poll that saw it was sent:
# off by at most one poll period (a few tenths of a millisecond).
lags = sorted(max(a - w, 0.0) for w, a in zip(sent, applied))
print("lag     publish -> apply at %d batches/s: p50 %.2f ms, p99 %.2f ms, "
      "max %.2f ms" % (rate, lags[len(lags) // 2] * 1e3,
                       lags[int(len(lags) * 0.99)] * 1e3, lags[-1] * 1e3))
PYEOF

# Warm start.  A replica that applied the first 90% of the capture stores
# its snapshot; the rest is published; then one replica replays the whole
# stream and another starts from the snapshot and the tail.
head9=$((n * 9 / 10))
head -n $((2 * head9)) "$tmp/cap.ndjson" |
    kvjs pub -q -s "$url" --stream B4 --prefix b4 --max-pending 4096
kvjs sub -q -s "$url" --stream B4 --prefix b4 |
    kvindex serve -q --exit-on-eof --snapshot "$tmp/w0.snap" -s "$tmp/w0.sock"
# The sequence the snapshot holds: from its header where kvindex records
# it, else the stream's last (it is quiet here).
if head -n 1 "$tmp/w0.snap" | jq -e '.js_seq != null' >/dev/null; then
    kvjs snap put w -q -s "$url" <"$tmp/w0.snap" >/dev/null
else
    kvjs snap put w -q -s "$url" --js-seq "$(kvjs info -s "$url" --stream B4 |
        jq .last_seq)" <"$tmp/w0.snap" >/dev/null
fi
S=$(kvjs snap info w -s "$url" | jq .js_seq)
tail -n +$((2 * head9 + 1)) "$tmp/cap.ndjson" |
    kvjs pub -q -s "$url" --stream B4 --prefix b4
# Time to ready: from its start until it applied the capture's last batch.
t0=$(now)
follow_into full B4 ""
wait_last full
full=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
t0=$(now)
kvjs snap get w -s "$url" >"$tmp/w.snap"
follow_into warm B4 "--snapshot $tmp/w.snap" --from $((S + 1))
wait_last warm
warm=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
if cmp -s <(kvindex dump -s "$tmp/full.sock") <(kvindex dump -s "$tmp/warm.sock"); then
    same="dumps identical"
else
    same="DUMPS DIFFER"
fi
entries=$(grep -c '"type":"entry"' "$tmp/w.snap")
mb=$(awk -v b="$(wc -c <"$tmp/w.snap")" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "warm    snapshot ($entries entries, $mb MiB, js_seq $S) + tail of $((n - head9)) batches: ready in ${warm}s;" \
    "full replay of $n batches: ${full}s; ratio $(awk -v a="$warm" -v b="$full" 'BEGIN { printf "%.2f", a / b }'); $same"
[ "$same" = "dumps identical" ]
