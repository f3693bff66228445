#!/usr/bin/env bash
# NDJSON writer and reader throughput (bench/bench_ingest.c) on a stream
# shaped like bench/gen_stream.py's: the reader against jansson's
# json_loadb of the same lines (the DOM-parse baseline), as a ratio, plus
# lines_next + ndjson_parse_line from a file (kvindex's ingest path minus
# the index), the writer alone (its token ids with the widest instruction
# set and with the portable path), and the token ids of a 2,048-token match
# request with both jscan_tokens readers against json_loadb.  CPU time,
# best of three.  Adds the request's figure to `make bench`'s summary
# (bench/summary.py) when KVTAP_BENCH_SUMMARY is set.
set -eu
: "${KVTAP_BUILD:=$(cd "$(dirname "$0")/.." && pwd)/build/default}"
bin="$KVTAP_BUILD/bench/bench_ingest"
if [ ! -x "$bin" ]; then
    echo "20-ingest: $bin not built (run make)" >&2
    exit 1
fi
out=$("$bin")
echo "$out"
if [ -n "${KVTAP_BENCH_SUMMARY:-}" ]; then
    # request ids (2,048 a request): jscan_tokens A us (SET), B us (sse2), ...
    now=$(echo "$out" | sed -n 's/^request ids.*: jscan_tokens \([0-9.]*\) us (\([a-z0-9]*\)), \([0-9.]*\) us (\([a-z0-9]*\)).*/\1 us (\2; \4 \3 us)/p')
    if [ -n "$now" ]; then
        /usr/bin/python3 "$(dirname "$0")/summary.py" add \
            "$KVTAP_BENCH_SUMMARY" request_ids "$now" -
    fi
fi
