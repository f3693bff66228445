#!/usr/bin/env bats
# kvindex's line reading on both ends of its socket (lib/lines) and its
# snapshot file (lib/atomicfile), against real processes.

load helpers

setup() {
    S=$BATS_TEST_TMPDIR/kv.sock
    SRV=
    FAKE=
}

teardown() {
    for p in $SRV $FAKE; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    return 0
}

start() {
    kvindex serve -s "$S" "$@" 3>&- &
    SRV=$!
    kvindex ping -s "$S" -t 5s >/dev/null
}

# Sends $1 to the server in pieces of $2 bytes, then shuts down the writing
# side; prints every reply line.
send_pieces() {
    "$PY" - "$S" "$1" "$2" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
data, step = sys.argv[2].encode(), int(sys.argv[3])
for i in range(0, len(data), step):
    s.sendall(data[i:i + step])
    time.sleep(0.002)
s.shutdown(socket.SHUT_WR)
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
sys.stdout.write(out.decode())
PY
}

@test "requests in pieces, pipelined, over-long, and one without its newline" {
    start --max-line 100 </dev/null
    long=$(printf '{"id":"long","op":"ping","pad":"%0200d"}' 0)
    reqs=$(printf '{"id":1,"op":"ping"}\n\n# a comment\n%s\n{"id":2,"op":"pods"}\n{"id":3,"op":"ping"}' "$long")
    run send_pieces "$reqs" 7
    assert_success
    ver=$(sed -n 's/^VERSION *:= *//p' "$BATS_TEST_DIRNAME/../../Makefile")
    assert_output "{\"id\":1,\"ok\":true,\"data\":{\"version\":\"$ver\"}}
{\"id\":null,\"ok\":false,\"error\":\"request line longer than --max-line\"}
{\"id\":2,\"ok\":true,\"data\":{\"pods\":[]}}
{\"id\":3,\"ok\":true,\"data\":{\"version\":\"$ver\"}}"
}

@test "the client: a reply cut short is an error, not a reply" {
    # A fake server: reads the request, sends half a reply, closes.
    "$PY" - "$S" <<'PY' &
import os, socket, sys
l = socket.socket(socket.AF_UNIX)
l.bind(sys.argv[1])
l.listen(1)
c, _ = l.accept()
got = b""
while not got.endswith(b"\n"):
    got += c.recv(4096)
c.sendall(b'{"id":null,"ok":tr')
c.close()
PY
    FAKE=$!
    for i in $(seq 100); do [ -S "$S" ] && break; sleep 0.05; done
    run kvindex ping -s "$S" -t 5s
    assert_failure
    assert_output "kvindex: error: the server closed the connection"
}

@test "snapshot: mode 0600, no temporary file, replaced whole" {
    SN=$BATS_TEST_TMPDIR/snap.ndjson
    echo "old contents" >"$SN.tmp.1"
    printf '%s\n' '{"pod":"p","seq":1,"type":"BlockStored","block_hashes":["9"],"parent_block_hash":null,"token_ids":[1,2],"block_size":2}' >"$BATS_TEST_TMPDIR/ev"
    # --exit-on-eof: the final snapshot is written after the whole input.
    kvindex serve -s "$S" --exit-on-eof --snapshot "$SN" --snapshot-every 1h \
        "$BATS_TEST_TMPDIR/ev" 3>&-
    [ "$(stat -c %a "$SN")" = 600 ]
    [ "$(grep -c '"type":"entry"' "$SN")" = 1 ]
    # Only the stale file of another process id is left.
    [ "$(cd "$BATS_TEST_TMPDIR" && ls snap.ndjson*)" = "snap.ndjson
snap.ndjson.tmp.1" ]
}
