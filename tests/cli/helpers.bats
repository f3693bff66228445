#!/usr/bin/env bats
# The shared test helpers themselves (tests/cli/helpers.bash), where a
# mistake would show only as a rare failure of some other test.

load helpers

@test "free_port: below the ephemeral range, free, and never the same twice in a file" {
    local lo seen="" p i
    lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range)
    for i in $(seq 40); do
        p=$(free_port)
        [[ "$p" =~ ^[0-9]+$ ]]
        [ "$p" -ge 10000 ]
        [ "$p" -lt "$lo" ]
        case " $seen " in *" $p "*) false ;; esac
        seen="$seen $p"
        "$PY" -c 'import socket, sys
socket.socket().bind(("127.0.0.1", int(sys.argv[1])))' "$p"
    done
}
