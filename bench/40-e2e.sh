#!/usr/bin/env bash
# End to end over tcp loopback: a Python publisher sends a recorded stream
# (bench/gen_stream.py) as fast as pyzmq can; kvsub and a plain Python
# pyzmq+msgpack+json subscriber receive it in turn.  Prints events/s and
# loss of each and the ratio.  E2E_BATCHES overrides the stream length.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${KVTAP_BIN:=$here/../bin}"
PY=/usr/bin/python3
n=${E2E_BATCHES:-100000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" "$here/gen_stream.py" "$tmp/stream.bin" "$n" >/dev/null
"$PY" "$here/e2e_bench.py" "$KVTAP_BIN/kvsub" "$tmp/stream.bin"
