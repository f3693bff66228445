#!/usr/bin/env bash
# kvtap through NATS JetStream (kvjs) next to the direct pipe, same run:
# one nats-server (JetStream, file storage in a temp dir, loopback port)
# and one NDJSON capture of KVJS_BATCHES batches (default 50000, two
# events each) fed to
#   direct  kvindex serve --exit-on-eof < capture        (the baseline)
#   pub     kvjs pub < capture, until every batch is acknowledged
#   sub     kvjs sub | kvindex serve --exit-on-eof       (stream -> index)
#   e2e     kvjs pub < capture while kvjs sub --follow | kvindex serve
#           runs, until the index applied the last batch
# and prints events/s of each with its ratio to direct, then the
# publish -> deliver lag p50/p99 of KVJS_LAG_RATE batches/s (default 2000)
# for 5 s, written into kvjs pub and timed where kvjs sub writes them.
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

awk -v n="$n" 'BEGIN {
    for (s = 0; s < n; s++) {
        p = "pod-" (s % 4)
        printf "{\"pod\":\"%s\",\"dp_rank\":0,\"seq\":%d,\"i\":0,\"ts\":%d.25,\"type\":\"BlockStored\",\"block_hashes\":[\"%d\",\"%d\"],\"parent_block_hash\":null,\"token_ids\":[%d,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31],\"block_size\":16,\"lora_id\":null,\"medium\":\"GPU\"}\n", p, s, 1700000000 + s, 2 * s + 1, 2 * s + 2, s
        printf "{\"pod\":\"%s\",\"dp_rank\":0,\"seq\":%d,\"i\":1,\"ts\":%d.25,\"type\":\"BlockRemoved\",\"block_hashes\":[\"%d\"],\"medium\":\"GPU\"}\n", p, s, 1700000000 + s, 2 * s - 1
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

# End to end: the reader is running before the first publish.
kvjs pub -q -s "$url" --stream B2 --prefix b2 </dev/null
mkfifo "$tmp/e2e"
kvindex serve -q -s "$tmp/e.sock" <"$tmp/e2e" &
pids="$! $pids"
kvjs sub -q -s "$url" --stream B2 --prefix b2 --follow >"$tmp/e2e" &
pids="$! $pids"
kvindex ping -s "$tmp/e.sock" -t 5s >/dev/null
t0=$(now)
kvjs pub -q -s "$url" --stream B2 --prefix b2 <"$tmp/cap.ndjson"
until kvindex pods -r -s "$tmp/e.sock" | jq -e --argjson s $((n - 1)) \
    'any(.pods[]; .last_seq == $s)' >/dev/null; do sleep 0.02; done
t1=$(now)
e2e=$(rate_of "$t0" "$t1")

ratio() { awk -v a="$1" -v b="$direct" 'BEGIN { printf "%.2f", a / b }'; }
echo "events: $events ($n batches, 4 pods)"
echo "direct  kvindex < capture:          $direct events/s"
echo "pub     kvjs pub (all acked):       $pub events/s  ratio $(ratio "$pub")"
echo "sub     kvjs sub | kvindex:         $sub events/s  ratio $(ratio "$sub")"
echo "e2e     kvjs pub -> sub | kvindex:  $e2e events/s  ratio $(ratio "$e2e")"

# Lag: timestamps written by the feeder, read back where sub writes.
kvjs pub -q -s "$url" --stream B3 --prefix b3 </dev/null
"$PY" - "$url" "$rate" <<'PYEOF'
import json, subprocess, sys, threading, time
url, rate = sys.argv[1], int(sys.argv[2])
common = ["-q", "-s", url, "--stream", "B3", "--prefix", "b3"]
sub = subprocess.Popen(["kvjs", "sub", *common, "--follow"],
                       stdout=subprocess.PIPE, text=True)
time.sleep(0.5)
pub = subprocess.Popen(["kvjs", "pub", *common], stdin=subprocess.PIPE,
                       text=True, bufsize=1)
total = rate * 5
sent, lags = {}, []
def reader():
    for line in sub.stdout:
        seq = json.loads(line)["seq"]
        lags.append(time.monotonic() - sent[seq])
        if len(lags) == total:
            return
t = threading.Thread(target=reader)
t.start()
start = time.monotonic()
for s in range(total):
    due = start + s / rate
    d = due - time.monotonic()
    if d > 0:
        time.sleep(d)
    sent[s] = time.monotonic()
    pub.stdin.write('{"pod":"lag","dp_rank":0,"seq":%d,"i":0,"ts":%d,'
                    '"type":"AllBlocksCleared"}\n' % (s, s))
    pub.stdin.flush()
t.join(30)
pub.stdin.close()
pub.wait()
sub.terminate()
lags.sort()
if len(lags) < total:
    print("lag: only %d of %d batches came back" % (len(lags), total))
    sys.exit(1)
print("lag     pub -> sub at %d batches/s: p50 %.2f ms, p99 %.2f ms, max %.2f ms"
      % (rate, lags[len(lags) // 2] * 1e3, lags[int(len(lags) * 0.99)] * 1e3,
         lags[-1] * 1e3))
PYEOF
