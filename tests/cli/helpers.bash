# Shared set-up for the bats tests.  Load with: load helpers
#
# The tools under test come from $KVTAP_BIN (scripts/run-tests sets it);
# the independent engine emulation is tests/peer/peer.py, run with Debian's
# python3 because that is the one that sees python3-zmq and python3-msgpack.

bats_load_library bats-support
bats_load_library bats-assert

: "${KVTAP_TOP:=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)}"
: "${KVTAP_BIN:=$KVTAP_TOP/bin}"
export PATH="$KVTAP_BIN:$PATH"
PY=/usr/bin/python3
PEER="$KVTAP_TOP/tests/peer/peer.py"

# Skips the test, saying why, when the tools were built with
# ThreadSanitizer (make tsan-check sets KVTAP_SANITIZE=thread): for tests
# whose clocks or memory bounds do not hold at its speed and size.
skip_under_tsan() {
    if [ "${KVTAP_SANITIZE:-}" = thread ]; then
        skip "under ThreadSanitizer: $1"
    fi
}

# Prints a TCP port on 127.0.0.1 that is free now and that no earlier call
# in this bats file handed out.  It is picked at random below the kernel's
# ephemeral range: a port the kernel picks (bind to port 0) can be given
# the next moment to an outgoing connection as its source port, ZeroMQ's
# or a NATS client's, before the test's server binds it; in CI that made
# kvpub fail with "Address already in use" in the kvjs faults test.
free_port() {
    "$PY" - "${BATS_RUN_TMPDIR:-}" <<'PY'
import fcntl, os, random, socket, sys

lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
log = os.path.join(sys.argv[1], "free_ports") if sys.argv[1] else os.devnull
with open(log, "a+") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    f.seek(0)
    given = set(f.read().split())
    while True:
        port = random.randrange(10000, lo) if lo > 11000 else 0
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            port = s.getsockname()[1]
        except OSError:
            continue
        finally:
            s.close()
        if str(port) not in given:
            break
    f.write("%d\n" % port)
print(port)
PY
}

# Kills and reaps the background processes whose ids a test put in the
# array PIDS (a teardown).
kill_pids() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
}

# Waits up to $2 seconds (default 5) until file $1 exists and is not empty.
wait_file() {
    local f=$1 t=${2:-5} i=0
    while [ ! -s "$f" ]; do
        sleep 0.05
        i=$((i + 1))
        [ "$i" -ge $((t * 20)) ] && return 1
    done
    return 0
}

# Waits up to $2 seconds (default 5) for process $1 to end; returns its
# status through wait, or 124 when it is still running (then kills it).
wait_pid() {
    local pid=$1 t=${2:-5} i=0
    while kill -0 "$pid" 2>/dev/null; do
        sleep 0.05
        i=$((i + 1))
        if [ "$i" -ge $((t * 20)) ]; then
            kill -9 "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
            return 124
        fi
    done
    wait "$pid"
}

# Asserts that file $1 is NDJSON as the tools promise it: every line,
# including the last, ends in '\n' and holds exactly one JSON object; no
# blank lines.  An empty file passes.  Prints the first offending line.
assert_ndjson() {
    "$PY" - "$1" <<'PYEOF'
import json, sys
def no_constant(name):
    raise ValueError("%s is not JSON" % name)
data = open(sys.argv[1], "rb").read()
if data and not data.endswith(b"\n"):
    print("%s: the last line has no newline" % sys.argv[1])
    sys.exit(1)
for n, line in enumerate(data.split(b"\n")[:-1], 1):
    try:
        v = json.loads(line, parse_constant=no_constant)
    except ValueError as e:
        print("%s:%d: not one JSON value (%s): %r" % (sys.argv[1], n, e, line[:200]))
        sys.exit(1)
    if not isinstance(v, dict):
        print("%s:%d: not a JSON object: %r" % (sys.argv[1], n, line[:200]))
        sys.exit(1)
PYEOF
}

# run_ndjson FILE CMD [ARG...]: like `run --separate-stderr CMD ...`, but
# CMD's stdout goes, exactly as written, to FILE (stderr to FILE.err), and
# the run fails unless FILE is NDJSON (assert_ndjson).  Sets status, output
# (stdout), lines and stderr for the assertions that follow.
run_ndjson() {
    local f=$1
    shift
    status=0
    "$@" >"$f" 2>"$f.err" || status=$?
    output=$(cat "$f")
    stderr=$(cat "$f.err")
    mapfile -t lines <"$f"
    assert_ndjson "$f"
}
