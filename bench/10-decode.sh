#!/usr/bin/env bash
# Decode speed (issue 2, "Speed"): events/s of kvsub's decode+NDJSON path on
# a recorded stream of realistic vLLM batches, next to a plain Python
# msgpack+json decoder and msgpack-c's bare unpack (the floor), all measured
# here, now, on the same payloads.  CPU time, so a busy machine skews every
# side alike.  Targets: >= 1M events/s, >= 7.5x Python, >= 0.5x the floor.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${KVTAP_BUILD:=$here/../build/default}"
py=/usr/bin/python3
secs=${BENCH_SECONDS:-2}
stream=$KVTAP_BUILD/bench/stream-20000.bin

mkdir -p "$(dirname "$stream")"
if [ ! -s "$stream" ]; then
    "$py" "$here/gen_stream.py" "$stream.tmp" 20000 >/dev/null
    mv "$stream.tmp" "$stream"
fi

c=$("$KVTAP_BUILD/bench/bench_decode" "$stream" "$secs")
p=$("$py" "$here/decode_baseline.py" "$stream" "$secs")

get() { printf '%s\n' "$1" | awk -v k="$2" '$1 == k { print $2 }'; }
dec=$(get "$c" decode+ndjson)
only=$(get "$c" decode)
floor=$(get "$c" unpack)
pyr=$(get "$p" python)
bpb=$(get "$c" bytes_per_batch)
epp=$(get "$c" events_per_pass)

awk -v dec="$dec" -v only="$only" -v floor="$floor" -v pyr="$pyr" \
    -v bpb="$bpb" -v epp="$epp" 'BEGIN {
    printf "stream: 20000 batches, %d events, %d bytes per batch\n", epp, bpb
    printf "kvtap decode+ndjson  %10.0f events/s\n", dec
    printf "kvtap decode only    %10.0f events/s\n", only
    printf "msgpack-c unpack     %10.0f events/s (floor)\n", floor
    printf "python msgpack+json  %10.0f events/s (baseline)\n", pyr
    printf "ratio vs python      %10.2fx (target >= 7.5)\n", dec / pyr
    printf "ratio vs unpack      %10.2fx (target >= 0.5)\n", dec / floor
}'
