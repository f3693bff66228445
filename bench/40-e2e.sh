#!/usr/bin/env bash
# End to end over tcp loopback (bench/e2e_bench.py): a recorded stream
# (bench/gen_stream.py) sent as fast as libzmq goes (bench/e2e_zmq.c) to
# the transport floor (receive and count), to kvsub and to a plain Python
# pyzmq+msgpack+json subscriber, then sent by a Python publisher (like the
# engine's) to kvsub.  Prints events/s, loss and CPU of each, and the
# ratios.  E2E_BATCHES overrides the stream length (default 100000).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${KVTAP_BIN:=$here/../bin}"
: "${KVTAP_BUILD:=$here/../build/default}"
PY=/usr/bin/python3
n=${E2E_BATCHES:-100000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" "$here/gen_stream.py" "$tmp/stream.bin" "$n" >/dev/null
"$PY" "$here/e2e_bench.py" "$KVTAP_BIN" "$KVTAP_BUILD/bench" "$tmp/stream.bin"
