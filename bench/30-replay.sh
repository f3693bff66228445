#!/usr/bin/env bash
# Replay of 10,000 typical batches (tests/peer/peer.py's synthetic mix:
# mostly 1-4 block BlockStored of 16 tokens, removals, a few clears; about
# 3.8 events and 1.1 KB per batch) over tcp loopback, printed to /dev/null.
# Times kvreplay and, in the same run against the same engine emulation,
# two Python DEALER clients: one that decodes and prints JSON like
# kvreplay (the baseline), and one that only receives (the transport and
# the Python ROUTER's own sending speed: the floor for both).
# REPLAY_BATCHES and REPLAY_RUNS override the size and the repetitions.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${KVTAP_BIN:=$here/../bin}"
PY=/usr/bin/python3
n=${REPLAY_BATCHES:-10000}
runs=${REPLAY_RUNS:-5}
tmp=$(mktemp -d)
peer_pid=
cleanup() {
    [ -n "$peer_pid" ] && kill "$peer_pid" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

port=$("$PY" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
uri="tcp://127.0.0.1:$port"
"$PY" "$here/../tests/peer/peer.py" --quiet --replay "$uri" --count "$n" \
    --buffer "$n" --hold 600 --done "$tmp/done" &
peer_pid=$!
for _ in $(seq 1 400); do
    [ -s "$tmp/done" ] && break
    sleep 0.05
done
[ -s "$tmp/done" ] || { echo "peer did not start" >&2; exit 1; }

cat >"$tmp/client.py" <<'EOF'
import json, sys, time, zmq, msgpack
uri, mode = sys.argv[1], sys.argv[2]
ctx = zmq.Context()
d = ctx.socket(zmq.DEALER)
d.setsockopt(zmq.RCVHWM, 1000000)
d.setsockopt(zmq.LINGER, 0)
d.connect(uri)
out = open("/dev/null", "w")
t0 = time.perf_counter()
d.send_multipart([b"", (0).to_bytes(8, "big")])
n = 0
while d.poll(5000):
    f = d.recv_multipart()
    if f[-2] == b"\xff" * 8:
        break
    n += 1
    if mode == "decode":
        seq = int.from_bytes(f[-2], "big")
        ts, evs, rank = msgpack.unpackb(f[-1], raw=False,
                                        strict_map_key=False)
        for i, e in enumerate(evs):
            o = {"pod": uri, "dp_rank": rank, "seq": seq, "i": i, "ts": ts}
            o.update(e)
            if "block_hashes" in o:
                o["block_hashes"] = [str(h & (2**64 - 1)) if isinstance(h, int)
                                     else h.hex() for h in o["block_hashes"]]
            out.write(json.dumps(o, separators=(",", ":")) + "\n")
print("%.1f %d" % ((time.perf_counter() - t0) * 1000, n))
EOF

# Median of the runs, in ms, for a command that prints "ms batches".
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

kv_ms=()
for _ in $(seq 1 "$runs"); do
    s=$(date +%s%N)
    "$KVTAP_BIN/kvreplay" -q "$uri" >/dev/null
    e=$(date +%s%N)
    kv_ms+=("$(((e - s) / 1000))")
done
kv=$(printf '%s\n' "${kv_ms[@]}" | median)
stats=$("$KVTAP_BIN/kvreplay" -q --stats "$uri" 2>&1 >/dev/null)
# kvreplay's own CPU (user+sys), which the Python peer's speed does not bound.
cpu=$(/usr/bin/time -f '%U %S' "$KVTAP_BIN/kvreplay" -q "$uri" 2>&1 >/dev/null |
    tail -n 1 | awk '{printf "%.0f", ($1 + $2) * 1000}')

py_ms=()
floor_ms=()
for _ in $(seq 1 "$runs"); do
    r=$("$PY" "$tmp/client.py" "$uri" decode)
    py_ms+=("${r% *}")
    py_n=${r#* }
    r=$("$PY" "$tmp/client.py" "$uri" recv)
    floor_ms+=("${r% *}")
    floor_n=${r#* }
done
py=$(printf '%s\n' "${py_ms[@]}" | median)
floor=$(printf '%s\n' "${floor_ms[@]}" | median)

awk -v kv="$kv" -v py="$py" -v fl="$floor" -v n="$n" -v runs="$runs" \
    -v pyn="$py_n" -v fln="$floor_n" -v cpu="$cpu" 'BEGIN {
    printf "replay of %d batches to /dev/null, median of %d runs:\n", n, runs
    printf "  kvreplay (whole process)        %8.1f ms  (%.0f batches/s)\n",
        kv / 1000, n / (kv / 1e6)
    printf "  kvreplay CPU (user+sys)         %8d ms\n", cpu
    printf "  python DEALER+msgpack+json      %8.1f ms  (in-process; last run got %d)\n", py, pyn
    printf "  python DEALER receive only      %8.1f ms  (floor: transport + the Python ROUTER; last run got %d)\n", fl, fln
    printf "  ratio python/kvreplay           %8.2fx\n", py / (kv / 1000)
}'
echo "  kvreplay --stats: $stats"
