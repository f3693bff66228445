#!/usr/bin/env bash
# kvpub's publish rate: N batches of NDJSON (a kvpub --synth workload as
# kvsub captured it: about 3 events and 0.45 KB of payload per batch) read
# from a file, grouped into batches, encoded in the vllm layout and sent on
# a PUB socket.  Nobody subscribes, so libzmq drops each message at once
# and the time is the publisher's own work.  Baseline, in the same run: a
# Python publisher doing the same (json, the msgspec-equivalent encoding of
# tests/peer/layouts.py with python msgpack, pyzmq).  Best of KVPUB_RUNS
# (default 3) runs; KVPUB_BATCHES (default 20000) sets the size.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${KVTAP_BIN:=$here/../bin}"
PATH=$KVTAP_BIN:$PATH
PY=/usr/bin/python3
n=${KVPUB_BATCHES:-20000}
runs=${KVPUB_RUNS:-3}
tmp=$(mktemp -d)
pids=
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

port() {
    "$PY" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The input: a synthetic engine's batches, as NDJSON.
uri=tcp://127.0.0.1:$(port)
kvpub -q --synth "$n" --wait-subs 1 "$uri" &
pids="$pids $!"
kvsub -q --idle 3s "bench=$uri" >"$tmp/in.ndjson"
lines=$(wc -l <"$tmp/in.ndjson")

cat >"$tmp/pub.py" <<'PYEOF'
import json, sys, zmq
sys.path.insert(0, sys.argv[3])
import layouts
path, uri = sys.argv[1], sys.argv[2]
ctx = zmq.Context()
s = ctx.socket(zmq.PUB)
s.setsockopt(zmq.SNDHWM, 100000)
s.bind(uri)
U64 = (1 << 64) - 1
def event(line):
    ev = {}
    for k, v in line.items():
        if k in ("pod", "model", "dp_rank", "seq", "i", "ts"):
            continue
        if k == "block_hashes":
            v = [int(h) for h in v]
        elif k == "parent_block_hash" and v is not None:
            v = int(v)
        ev[k] = v
    return ev
seq = 0
def send(batch):
    global seq
    first = batch[0]
    payload = layouts.encode_batch(first["ts"], [event(l) for l in batch],
                                   first.get("dp_rank"), "vllm")
    s.send_multipart([b"", seq.to_bytes(8, "big"), payload])
    seq += 1
batch, key = [], None
with open(path) as f:
    for raw in f:
        line = json.loads(raw)
        k = (line.get("pod"), line.get("dp_rank"), line.get("seq"))
        if batch and k != key:
            send(batch)
            batch = []
        key = k
        batch.append(line)
if batch:
    send(batch)
s.close(linger=2000)
ctx.term()
PYEOF

# Best wall time in ms of "$@" over $runs runs.
best_ms() {
    local best='' t0 t1 ms
    for _ in $(seq 1 "$runs"); do
        t0=$(date +%s%N)
        "$@"
        t1=$(date +%s%N)
        ms=$(((t1 - t0) / 1000000))
        if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
    done
    echo "$best"
}

k=$(best_ms kvpub -q -i "$tmp/in.ndjson" "tcp://127.0.0.1:$(port)")
p=$(best_ms "$PY" "$tmp/pub.py" "$tmp/in.ndjson" "tcp://127.0.0.1:$(port)" \
    "$here/../tests/peer")
s=$(best_ms kvpub -q --synth "$n" "tcp://127.0.0.1:$(port)")
[ "$k" -gt 0 ] || k=1
echo "kvpub: $n batches ($lines lines) from NDJSON in ${k} ms ($((n * 1000 / k)) batches/s)"
echo "python publisher (json + msgpack + pyzmq): ${p} ms ($((n * 1000 / (p > 0 ? p : 1))) batches/s)"
echo "kvpub --synth (generate + encode + send): ${s} ms"
awk -v k="$k" -v p="$p" 'BEGIN { printf "ratio: kvpub is %.1fx the Python publisher\n", p / k }'
