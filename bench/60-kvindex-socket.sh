#!/usr/bin/env bash
# kvindex over its socket: the p99 round trip of a 2,048-token match with
# ~1M (pod, block) entries across 64 pods (target <= 100 us), next to a
# ping round trip measured on the same connection; and NDJSON ingest end to
# end (target >= 300k events/s on one core), next to `cat > /dev/null` and
# a Python json.loads loop over the same file.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${KVTAP_BIN:=$here/../bin}"
: "${KVTAP_BUILD:=$here/../build/default}"
PY=/usr/bin/python3
KV=$KVTAP_BIN/kvindex
N_INGEST=${N_INGEST:-600000}
tmp=$(mktemp -d)
srv=
cleanup() {
    [ -n "$srv" ] && kill "$srv" 2>/dev/null && wait "$srv" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

secs() { "$PY" -c 'import time; print("%.6f" % time.monotonic())'; }

echo "generating inputs in $tmp ..."
"$PY" "$here/kvindex_gen.py" ingest "$tmp/ingest.ndjson" "$N_INGEST"
"$PY" "$here/kvindex_gen.py" index "$tmp/index.ndjson" "$tmp/reqs.jsonl"

# 1. Ingest, end to end: read, parse, apply, for one file.
t0=$(secs)
cat "$tmp/ingest.ndjson" >/dev/null
t1=$(secs)
"$PY" -c '
import json, sys
n = 0
with open(sys.argv[1], "rb") as f:
    for line in f:
        json.loads(line)
        n += 1
' "$tmp/ingest.ndjson"
t2=$(secs)
# The CPU time (user + sys) is reported too: on a shared machine the wall
# clock includes waiting for a core.
/usr/bin/time -f "%U %S" -o "$tmp/cpu" \
    "$KV" serve -q -s "$tmp/i.sock" --exit-on-eof "$tmp/ingest.ndjson"
t3=$(secs)
"$PY" - "$N_INGEST" "$t0" "$t1" "$t2" "$t3" "$(stat -c %s "$tmp/ingest.ndjson")" "$(cat "$tmp/cpu")" <<'PY'
import sys
n = int(sys.argv[1]); t0, t1, t2, t3 = map(float, sys.argv[2:6]); size = int(sys.argv[6])
u, s = map(float, sys.argv[7].split())
cat, py, kv = t1 - t0, t2 - t1, t3 - t2
print("ingest: %d events, %.1f MB" % (n, size / 1e6))
print("  cat > /dev/null      %8.0f MB/s" % (size / 1e6 / cat))
print("  python json.loads    %8.0f events/s" % (n / py))
print("  kvindex serve        %8.0f events/s wall, %.0f events/s per CPU second"
      "  target >= 300000" % (n / kv, n / (u + s)))
print("  kvindex / json.loads = %.1fx (wall)" % (py / kv))
PY

# 2. Match round trip with ~1M entries.
"$KV" serve -q -s "$tmp/m.sock" -m m "$tmp/index.ndjson" 3>&- &
srv=$!
"$KV" ping -s "$tmp/m.sock" -t 30s >/dev/null
want=$(wc -l <"$tmp/index.ndjson")
for _ in $(seq 600); do
    got=$("$KV" stats -r -s "$tmp/m.sock" | jq .lines)
    [ "$got" -ge "$want" ] && break
    sleep 0.1
done
"$KV" stats -r -s "$tmp/m.sock" |
    jq -r '"index: \(.entries) entries, \(.keys) keys, \(.pods) pods, \(.bytes) bytes (\(.bytes / .entries | floor) B/entry)"'
"$KVTAP_BUILD/bench/kvindex_rtt" "$tmp/m.sock" "$tmp/reqs.jsonl" 20000 "$srv"
echo "  target: match p99 <= 100 us (load average: $(cut -d' ' -f1 /proc/loadavg) on $(nproc) cores)"
