#!/usr/bin/env bats
# ZeroMQ CURVE on kvtap's own hops (docs/cli.md#keys-curve): kvpub serves
# with a key pair, kvsub and kvreplay connect with its public key, a bound
# kvsub admits only the clients its --curve-allow file lists.

load helpers
bats_require_minimum_version 1.5.0

setup() {
    D=$BATS_TEST_TMPDIR
    PIDS=()
    for k in srv cli wrong; do
        kvpub --curve-keygen "$D/$k" >"$D/$k.json"
    done
}

teardown() {
    kill_pids
}

# kvpub serving 5 synthetic batches with the srv key pair; sets PUB, REP.
start_curve_pub() {
    PUB=tcp://127.0.0.1:$(free_port)
    REP=tcp://127.0.0.1:$(free_port)
    kvpub -q --curve-secret "$D/srv.key" --synth 5 --hold 120s "$PUB" "$REP" &
    PIDS+=($!)
    for _ in $(seq 200); do
        kvreplay -q -t 1s --from 4 --curve-server-key "$D/srv.pub" "$REP" \
            >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    return 1
}

@test "--curve-keygen: PREFIX.key 0600 and PREFIX.pub 0644, never replaced" {
    [ "$(stat -c %a "$D/srv.key")" = 600 ]
    [ "$(stat -c %a "$D/srv.pub")" = 644 ]
    pub=$(grep -v '^#' "$D/srv.pub")
    [ "${#pub}" = 40 ]
    run cat "$D/srv.json"
    assert_output "{\"secret_key_file\":\"$D/srv.key\",\"public_key_file\":\"$D/srv.pub\",\"public_key\":\"$pub\"}"
    cp "$D/srv.key" "$D/before"
    run --separate-stderr kvpub --curve-keygen "$D/srv"
    assert_failure 1
    assert_output ''
    assert_equal "$stderr" "kvpub: error: $D/srv.key: File exists"
    cmp "$D/srv.key" "$D/before"
}

@test "kvreplay: the right server key gets the batches; a wrong one or none gets nothing" {
    start_curve_pub
    run_ndjson "$D/got" kvreplay --curve-server-key "$D/srv.pub" "$REP"
    assert_success
    [ "$(jq -r .seq "$D/got" | uniq | tr '\n' ' ')" = "0 1 2 3 4 " ]
    run_ndjson "$D/got" kvreplay -t 1s --curve-server-key "$D/wrong.pub" "$REP"
    assert_failure 1
    assert_output ''
    assert_equal "$stderr" "kvreplay: error: $REP: no reply in 1s (CURVE: is --curve-server-key the server's public key, and does it admit this client?)"
    run_ndjson "$D/got" kvreplay -t 1s "$REP"
    assert_failure 1
    assert_output ''
    assert_equal "$stderr" "kvreplay: error: $REP: no reply in 1s"
}

@test "kvsub: the right server key gets events; a wrong one a handshake warning and nothing" {
    start_curve_pub
    run_ndjson "$D/got" kvsub -c 3 --duration 60s \
        --curve-server-key "$D/srv.pub" "pod-a=$PUB,$REP"
    assert_success
    assert_equal "${#lines[@]}" 3
    run_ndjson "$D/got" kvsub --duration 2s \
        --curve-server-key "$D/wrong.pub" "pod-a=$PUB"
    assert_success
    assert_output ''
    [[ "$stderr" == *"kvsub: warning: pod-a: cannot connect to $PUB: ZMTP handshake failed (retrying)"* ]]
}

@test "kvsub: a failing handshake is warned about once, however often it retries; success is a note" {
    local port
    port=$(free_port)
    PUB=tcp://127.0.0.1:$port
    # A server with another key pair: every reconnect fails the handshake.
    kvpub -q --curve-secret "$D/wrong.key" --synth 100000 --rate 20 "$PUB" &
    local pub=$!
    PIDS+=($pub)
    # kvsub starts once kvpub listens, so that its first failure is the
    # handshake's, not a refused connection.
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.05
    done
    kvsub -v -c 3 --duration 120s --curve-server-key "$D/srv.pub" \
        "pod-a=$PUB" >"$D/out" 2>"$D/err" &
    local kv=$!
    PIDS+=($kv)
    # Until libzmq has reconnected and failed at least three times.
    for _ in $(seq 600); do
        [ "$(grep -c 'handshake failed (' "$D/err")" -ge 3 ] && break
        sleep 0.05
    done
    [ "$(grep -c 'handshake failed (' "$D/err")" -ge 3 ]
    # The right server comes up on the same port.
    kill "$pub"
    wait "$pub" || true
    kvpub -q --curve-secret "$D/srv.key" --synth 100000 --rate 20 "$PUB" &
    PIDS+=($!)
    wait_pid "$kv" 60
    [ "$(wc -l <"$D/out")" -eq 3 ]
    run grep -v -e '^kvsub: info: ' -e 'gap' -e 'joined at' "$D/err"
    assert_output "kvsub: warning: pod-a: cannot connect to $PUB: ZMTP handshake failed (retrying)
kvsub: pod-a: connected to $PUB (handshake succeeded)"
}

# kvpub -c publishing 3 AllBlocksCleared (ts $2) to $1 with more options.
clear3() {
    local uri=$1 ts=$2
    shift 2
    printf '{"pod":"p","seq":%d,"ts":%s,"type":"AllBlocksCleared"}\n' \
        0 "$ts" 1 "$ts" 2 "$ts" >"$D/clr$ts"
    kvpub -q -c --delay 300ms --hold 1s -i "$D/clr$ts" "$@" "$uri"
}

@test "kvsub -b --curve-allow: an unlisted client's 3 forged messages never get in" {
    SUB=tcp://127.0.0.1:$(free_port)
    grep -v '^#' "$D/cli.pub" >"$D/allow"
    kvsub -b -c 3 --duration 120s --curve-secret "$D/srv.key" \
        --curve-allow "$D/allow" -v "x=$SUB" >"$D/out" 2>"$D/err" &
    sub=$!
    PIDS+=($sub)
    # A client with a key of its own that is not listed, then one without
    # CURVE at all: both are refused during the handshake.
    clear3 "$SUB" 1 --curve-secret "$D/wrong.key" \
        --curve-server-key "$D/srv.pub"
    clear3 "$SUB" 2
    [ ! -s "$D/out" ]
    # The listed client gets in.
    clear3 "$SUB" 3 --curve-secret "$D/cli.key" \
        --curve-server-key "$D/srv.pub"
    wait_pid "$sub" 60
    run jq -c '[.seq, .ts, .type]' "$D/out"
    assert_output '[0,3,"AllBlocksCleared"]
[1,3,"AllBlocksCleared"]
[2,3,"AllBlocksCleared"]'
    # The unlisted client retries until it gives up: one or more refusals.
    run grep -E 'CURVE' "$D/err"
    assert_output --regexp '^kvsub: info: CURVE: refused [1-9][0-9]* handshakes of clients not in --curve-allow$'

}

@test "a secret key others may read is refused; key options are checked" {
    chmod 640 "$D/srv.key"
    run --separate-stderr kvpub --curve-secret "$D/srv.key" tcp://127.0.0.1:1
    assert_failure 1
    assert_equal "$stderr" "kvpub: error: $D/srv.key: a secret key others may access (mode 0640); chmod 600 it"
    run --separate-stderr kvreplay --curve-secret "$D/srv.key" tcp://127.0.0.1:1
    assert_failure 1
    assert_equal "$stderr" "kvreplay: error: $D/srv.key: a secret key others may access (mode 0640); chmod 600 it"
    echo 'not a key' >"$D/bad.pub"
    run --separate-stderr kvsub --curve-server-key "$D/bad.pub" tcp://127.0.0.1:1
    assert_failure 1
    assert_equal "$stderr" "kvsub: error: $D/bad.pub: line 1: not a CURVE key (40 characters of Z85)"
    run --separate-stderr kvsub --curve-server-key "$D/none" tcp://127.0.0.1:1
    assert_failure 1
    assert_equal "$stderr" "kvsub: error: $D/none: No such file or directory"
    run --separate-stderr kvsub -b --curve-allow "$D/cli.pub" tcp://127.0.0.1:1
    assert_failure 2
    assert_equal "$stderr" "kvsub: --curve-allow needs --curve-secret (the key pair the bound socket serves with)
Try 'kvsub --help'."
    run --separate-stderr kvsub --curve-allow "$D/cli.pub" tcp://127.0.0.1:1
    assert_failure 2
    assert_equal "$stderr" "kvsub: --curve-allow is for -b (kvsub serves the clients that connect to it)
Try 'kvsub --help'."
    run --separate-stderr kvpub --curve-server-key "$D/srv.pub" tcp://127.0.0.1:1
    assert_failure 2
    assert_equal "$stderr" "kvpub: --curve-server-key is for -c (kvpub connects to a bound kvsub); a bound kvpub serves with --curve-secret
Try 'kvpub --help'."
}
