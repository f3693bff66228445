#!/usr/bin/env bash
# The prefix index in process (lib/index*.c): apply rate of parsed
# BlockStored events, match latency of a 2,048-token prompt, and memory per
# (pod, block) entry at about 1M entries across 64 pods, each against a
# naive chained-hash index run in the same invocation (bench/bench_index.c);
# then the memory alone at about 0.6M, 1M and 1.5M entries, because the
# tables grow in steps and one size alone says little about the others.
# BENCH_QUICK=1 runs a small smoke version.
set -eu
: "${KVTAP_BUILD:=$(cd "$(dirname "$0")/.." && pwd)/build/default}"
bin="$KVTAP_BUILD/bench/bench_index"
if [ ! -x "$bin" ]; then
    echo "50-index: $bin not built (run make)" >&2
    exit 1
fi
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    exec "$bin" -q
fi
"$bin" -n 20000
exec "$bin" -m
