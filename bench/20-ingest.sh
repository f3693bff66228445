#!/usr/bin/env bash
# NDJSON writer and reader throughput (bench/bench_ingest.c) on a stream
# shaped like bench/gen_stream.py's: the reader against jansson's
# json_loadb of the same lines (the DOM-parse baseline), as a ratio, plus
# lines_next + ndjson_parse_line from a file (kvindex's ingest path minus
# the index) and the writer alone.  CPU time, best of three.
set -eu
: "${KVTAP_BUILD:=$(cd "$(dirname "$0")/.." && pwd)/build/default}"
bin="$KVTAP_BUILD/bench/bench_ingest"
if [ ! -x "$bin" ]; then
    echo "20-ingest: $bin not built (run make)" >&2
    exit 1
fi
exec "$bin"
