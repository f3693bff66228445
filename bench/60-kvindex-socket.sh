#!/usr/bin/env bash
# kvindex over its socket: the p99 round trip of a 2,048-token match with
# ~1M (pod, block) entries across 64 pods (target <= 100 us), next to a
# ping round trip measured on the same connection, and the prompts/s of
# the same prompts batched 32 to a request next to one at a time; the
# server's CPU per request again with the client on the server's core
# (the cross-core wake-ups a VM charges each round trip left out), and
# both for a bare poll/read/send server (bench/echo_floor.c), the floor; the
# p99 of 4 clients at once while the server ingests 200k events/s
# (target <= 150 us), next to the same clients before the ingest starts;
# and NDJSON ingest end to
# end (target >= 1.5M events per CPU second, the best of three runs), next
# to `cat > /dev/null` and
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
busy=
cleanup() {
    for p in $srv $busy; do
        kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
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
# clock includes waiting for a core.  Best of three runs: two runs of the
# same serve a minute apart have differed by 1.46x on this kind of VM.
runs=
for r in 1 2 3; do
    a=$(secs)
    /usr/bin/time -f "%U %S" -o "$tmp/cpu.$r" \
        "$KV" serve -q -s "$tmp/i.sock" --exit-on-eof "$tmp/ingest.ndjson"
    runs="$runs $(secs) $a $(cat "$tmp/cpu.$r")"
done
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
"$PY" - "$N_INGEST" "$t0" "$t1" "$t2" "$(stat -c %s "$tmp/ingest.ndjson")" "$runs" "$reader" "$here/summary.py" "$one_thread" <<'PY'
import os, subprocess, sys
n = int(sys.argv[1]); t0, t1, t2 = map(float, sys.argv[2:5]); size = int(sys.argv[5])
runs = list(map(float, sys.argv[6].split()))
runs = [runs[k:k + 4] for k in range(0, len(runs), 4)]  # end, begin, user, sys
end, begin, u, s = min(runs, key=lambda r: r[2] + r[3])
reader = float(sys.argv[7])
cat, py, kv = t1 - t0, t2 - t1, end - begin
cpu_rate = n / (u + s)
# The index's own rate: serve's CPU less what the reader alone took.
rest = (u + s) - n / reader
print("ingest: %d events, %.1f MB" % (n, size / 1e6))
print("  cat > /dev/null      %8.0f MB/s" % (size / 1e6 / cat))
print("  python json.loads    %8.0f events/s" % (n / py))
print("  kvindex serve        %8.0f events/s wall, %.0f events/s per CPU second"
      "  target >= 1500000 (best of %d runs; per CPU second: %s)"
      % (n / kv, cpu_rate, len(runs),
         ", ".join("%.0f" % (n / (r[2] + r[3])) for r in runs)))
print("  reader alone         %8.0f events/s per CPU second (bench_ingest -r);"
      " the rest of serve (index, reads) %.0f events/s per CPU second, "
      "%.0f%% of its CPU" % (reader, n / rest if rest > 0 else 0,
                             100 * rest / (u + s)))
print("  kvindex / json.loads = %.1fx (wall)" % (py / kv))
mode = sys.argv[9].split()
for k in range(0, len(mode), 5):
    m, end, begin, mu, ms = mode[k], *map(float, mode[k + 1:k + 5])
    print("  --reader-thread %-3s  %8.0f events/s wall, %.0f events/s per CPU "
          "second" % (m, n / (end - begin), n / (mu + ms)))
out = os.environ.get("KVTAP_BENCH_SUMMARY")
if out:
    def add(key, now, ratio):
        subprocess.run([sys.executable, sys.argv[8], "add", out, key, now,
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
# Where the scheduler puts the client decides most of a ping's CPU on a
# VM: a wake-up on the other core costs both sides an interrupt through
# the hypervisor.  The same requests with both on core 0 show what the
# server itself spends (docs/kvindex.md#what-a-request-costs).
echo "the same, client and server on one core (taskset -c 0):"
taskset -p -c 0 "$srv" >/dev/null
taskset -c 0 "$KVTAP_BUILD/bench/kvindex_rtt" "$tmp/m.sock" "$tmp/reqs.jsonl" 20000 "$srv" |
    grep -E 'round trip|CPU per request' | sed 's/^/  /' | tee "$tmp/rtt1"
kill "$srv" && wait "$srv" 2>/dev/null
srv=
# The floor under both: a server that makes the same system calls per
# request and does nothing else (bench/echo_floor.c), both placements.
"$KVTAP_BUILD/bench/echo_floor" "$tmp/e.sock" &
srv=$!
"$PY" -c 'import os, sys, time
for _ in range(600):
    if os.path.exists(sys.argv[1]): break
    time.sleep(0.05)' "$tmp/e.sock"
floor=$("$KVTAP_BUILD/bench/kvindex_rtt" "$tmp/e.sock" "$tmp/reqs.jsonl" 20000 "$srv" |
    awk '$4 == "request:" { sub(",", "", $6); print $6 }')
taskset -p -c 0 "$srv" >/dev/null
floor1=$(taskset -c 0 "$KVTAP_BUILD/bench/kvindex_rtt" "$tmp/e.sock" "$tmp/reqs.jsonl" 20000 "$srv" |
    awk '$4 == "request:" { sub(",", "", $6); print $6 }')
echo "floor, a bare poll/read/send server (echo_floor): $floor us a request unpinned (the scheduler may place it otherwise than kvindex above), $floor1 us on one core"
kill "$srv"
wait "$srv" 2>/dev/null || true # it dies of the signal
srv=

# 3. 4 clients at once while the server ingests ~200k events/s from a
# paced feeder on its stdin (the index first, then the ingest stream).
"$PY" "$here/kvindex_feed.py" 200000 "$tmp/index.ndjson" "$tmp/ingest.ndjson" "$tmp/go" |
    "$KV" serve -q -s "$tmp/b.sock" -m m 3>&- &
busy=$!
"$KV" ping -s "$tmp/b.sock" -t 30s >/dev/null
for _ in $(seq 600); do
    got=$("$KV" stats -r -s "$tmp/b.sock" | jq .lines)
    [ "$got" -ge "$want" ] && break
    sleep 0.1
done
# The same 4 clients before the feeder starts: what the row's target asks
# of the machine when there is nothing to ingest (five processes, two
# cores here), so that a miss shows whether ingest or the clients cost it.
"$KVTAP_BUILD/bench/kvindex_rtt" -c 4 "$tmp/b.sock" "$tmp/reqs.jsonl" 5000 |
    sed 's/:$/, before the ingest starts:/' | tee "$tmp/rtt4q"
touch "$tmp/go"
sleep 1 # the feeder's first lines in, its pace steady
l0=$("$KV" stats -r -s "$tmp/b.sock" | jq .lines)
b0=$(secs)
"$KVTAP_BUILD/bench/kvindex_rtt" -c 4 "$tmp/b.sock" "$tmp/reqs.jsonl" 5000 |
    sed 's/:$/, ingesting:/' | tee "$tmp/rtt4"
b1=$(secs)
l1=$("$KV" stats -r -s "$tmp/b.sock" | jq .lines)
echo "  ingested meanwhile: $("$PY" -c "print('%.0f' % (($l1 - $l0) / ($b1 - $b0)))") events/s (feeder: 200000); target: p99 <= 150 us"
kill "$busy" && wait "$busy" 2>/dev/null
busy=
if [ -n "${KVTAP_BENCH_SUMMARY:-}" ]; then
    # "match  round trip: p50 A us  p99 B us ..." and "server CPU per
    # request: ping C us, match D us".
    awk -v sum="$here/summary.py" -v out="$KVTAP_BENCH_SUMMARY" -v py="$PY" '
        function add(k, v, target, ceil) {
            system(py " " sum " add " out " " k " \"" v " us\" " \
                   (ceil ? target / v : v / target))
        }
        $1 == "match" && $2 == "round" { add("p99", $8, 100, 1) }
        # Not "server CPU per prompt: ..." (the batch lines).
        $1 == "server" && $2 == "CPU" && $4 == "request:" {
            sub(",", "", $6); add("cpu_ping", $6, 5, 1); add("cpu_match", $9, 15, 1)
        }
        # "prompts/s: one at a time A, batched 32 to a request B (xR)": a
        # figure reported, without a target.
        $1 == "prompts/s:" {
            sub(",", "", $6)
            system(py " " sum " add " out " batch \"" sprintf("%.0fk/s (x%s) vs %.0fk/s one at a time", $12 / 1e3, substr($13, 3, length($13) - 3), $6 / 1e3) "\" -")
        }' "$tmp/rtt"
    awk -v sum="$here/summary.py" -v out="$KVTAP_BENCH_SUMMARY" -v py="$PY" '
        function add(k, v) { system(py " " sum " add " out " " k " \"" v " us\" -") }
        $1 == "server" && $2 == "CPU" && $4 == "request:" {
            sub(",", "", $6); add("cpu_ping_1core", $6); add("cpu_match_1core", $9)
        }' "$tmp/rtt1"
    awk -v sum="$here/summary.py" -v out="$KVTAP_BENCH_SUMMARY" -v py="$PY" '
        $1 == "match" && $2 == "round" {
            system(py " " sum " add " out " p99_busy \"" $8 " us\" " 150 / $8)
        }' "$tmp/rtt4"
    awk -v sum="$here/summary.py" -v out="$KVTAP_BENCH_SUMMARY" -v py="$PY" '
        $1 == "match" && $2 == "round" {
            system(py " " sum " add " out " p99_busy_idle \"" $8 " us\" -")
        }' "$tmp/rtt4q"
    "$PY" "$here/summary.py" add "$KVTAP_BENCH_SUMMARY" cpu_floor \
        "$floor us / $floor1 us" -
fi
