#!/usr/bin/env bash
# NDJSON writer and reader throughput (bench/bench_ingest.c): the reader
# against jansson's json_loadb of the same lines, as a ratio.
set -eu
: "${KVTAP_BUILD:=$(cd "$(dirname "$0")/.." && pwd)/build/default}"
exec "$KVTAP_BUILD/bench/bench_ingest"
