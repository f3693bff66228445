#!/usr/bin/env bash
# kvindex over its socket: the p99 round trip of a 2,048-token match with
# ~1M (pod, block) entries across 64 pods (target <= 100 us), next to a
# ping round trip measured on the same connection, and the prompts/s of
# the same prompts batched 32 to a request next to one at a time; and NDJSON ingest end to
# end (target >= 300k events/s on one core), next to `cat > /dev/null` and
# a Python json.loads loop over the same file, and the reader alone
# (bench_ingest -r: lines + ndjson_parse_line, no index) to tell the
# parse side's share of serve's CPU from the index's, and serve with its
# reader thread off and on (wall clock and CPU).  Adds its figures to
# `make bench`'s summary (bench/summary.py) when KVTAP_BENCH_SUMMARY is set.
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
# The same with the reader thread off and on (docs/kvindex.md#reading-the-input):
# the wall clock is what a pipe sees, the CPU what it costs.
one_thread=
for m in off on; do
    a=$(secs)
    /usr/bin/time -f "%U %S" -o "$tmp/cpu.$m" \
        "$KV" serve -q -s "$tmp/i.sock" --exit-on-eof --reader-thread "$m" \
        "$tmp/ingest.ndjson"
    one_thread="$one_thread $m $(secs) $a $(cat "$tmp/cpu.$m")"
done
reader=$("$KVTAP_BUILD/bench/bench_ingest" -r "$tmp/ingest.ndjson" | awk '{print $4}')
"$PY" - "$N_INGEST" "$t0" "$t1" "$t2" "$t3" "$(stat -c %s "$tmp/ingest.ndjson")" "$(cat "$tmp/cpu")" "$reader" "$here/summary.py" "$one_thread" <<'PY'
import os, subprocess, sys
n = int(sys.argv[1]); t0, t1, t2, t3 = map(float, sys.argv[2:6]); size = int(sys.argv[6])
u, s = map(float, sys.argv[7].split())
reader = float(sys.argv[8])
cat, py, kv = t1 - t0, t2 - t1, t3 - t2
cpu_rate = n / (u + s)
# The index's own rate: serve's CPU less what the reader alone took.
rest = (u + s) - n / reader
print("ingest: %d events, %.1f MB" % (n, size / 1e6))
print("  cat > /dev/null      %8.0f MB/s" % (size / 1e6 / cat))
print("  python json.loads    %8.0f events/s" % (n / py))
print("  kvindex serve        %8.0f events/s wall, %.0f events/s per CPU second"
      "  target >= 1500000" % (n / kv, cpu_rate))
print("  reader alone         %8.0f events/s per CPU second (bench_ingest -r);"
      " the rest of serve (index, reads) %.0f events/s per CPU second, "
      "%.0f%% of its CPU" % (reader, n / rest if rest > 0 else 0,
                             100 * rest / (u + s)))
print("  kvindex / json.loads = %.1fx (wall)" % (py / kv))
mode = sys.argv[10].split()
for k in range(0, len(mode), 5):
    m, end, begin, mu, ms = mode[k], *map(float, mode[k + 1:k + 5])
    print("  --reader-thread %-3s  %8.0f events/s wall, %.0f events/s per CPU "
          "second" % (m, n / (end - begin), n / (mu + ms)))
out = os.environ.get("KVTAP_BENCH_SUMMARY")
if out:
    def add(key, now, ratio):
        subprocess.run([sys.executable, sys.argv[9], "add", out, key, now,
                        ratio], check=True)
    add("ingest", "%.0fk/CPU s" % (cpu_rate / 1e3), "%.4f" % (cpu_rate / 1.5e6))
    add("ingest_reader", "%.0fk/CPU s" % (reader / 1e3), "-")
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
"$KVTAP_BUILD/bench/kvindex_rtt" "$tmp/m.sock" "$tmp/reqs.jsonl" 20000 "$srv" |
    tee "$tmp/rtt"
echo "  target: match p99 <= 100 us (load average: $(cut -d' ' -f1 /proc/loadavg) on $(nproc) cores)"
if [ -n "${KVTAP_BENCH_SUMMARY:-}" ]; then
    # "match  round trip: p50 A us  p99 B us ..." and "server CPU per
    # request: ping C us, match D us".
    awk -v sum="$here/summary.py" -v out="$KVTAP_BENCH_SUMMARY" -v py="$PY" '
        function add(k, v, target, ceil) {
            system(py " " sum " add " out " " k " \"" v " us\" " \
                   (ceil ? target / v : v / target))
        }
        $1 == "match" && $2 == "round" { add("p99", $8, 100, 1) }
        $1 == "server" && $2 == "CPU" {
            sub(",", "", $6); add("cpu_ping", $6, 5, 1); add("cpu_match", $9, 15, 1)
        }
        # "prompts/s: one at a time A, batched 32 to a request B (xR)": a
        # figure reported, without a target.
        $1 == "prompts/s:" {
            sub(",", "", $6)
            system(py " " sum " add " out " batch \"" sprintf("%.0fk/s (x%s) vs %.0fk/s one at a time", $12 / 1e3, substr($13, 3, length($13) - 3), $6 / 1e3) "\" -")
        }' "$tmp/rtt"
fi
