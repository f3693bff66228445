# nats-server processes for the kvjs tests: load nats (after load helpers).
#
# Every server runs with JetStream on, its storage under $BATS_TEST_TMPDIR
# and its ports picked by free_port on 127.0.0.1; nats_stop_all (call it
# from teardown) kills every server the test started.

NATS_PIDS=()

# Starts server $1 (a name, n1 ...) with the extra arguments given; sets
# NATS_PID_<name> and records the pid.  Its log is $BATS_TEST_TMPDIR/<name>.log.
nats_start_raw() {
    local name=$1
    shift
    mkdir -p "$BATS_TEST_TMPDIR/$name"
    nats-server -js -a 127.0.0.1 -n "$name" -sd "$BATS_TEST_TMPDIR/$name" \
        "$@" >"$BATS_TEST_TMPDIR/$name.log" 2>&1 3>&- &
    NATS_PIDS+=($!)
    printf -v "NATS_PID_$name" '%s' "$!"
}

# Waits up to $2 seconds (default 10) until JetStream at URL $1 answers:
# `kvjs info` on a stream that does not exist says "not found" then.
nats_wait_js() {
    local url=$1 t=${2:-10} i=0 out
    while :; do
        out=$(kvjs info -q -s "$url" --connect-retries 1 --stream NO_SUCH 2>&1) || true
        case $out in *"not found"*) return 0 ;; esac
        sleep 0.1
        i=$((i + 1))
        if [ "$i" -ge $((t * 10)) ]; then
            echo "JetStream at $url not ready: $out" >&2
            return 1
        fi
    done
}

# One server; sets NATS_URL.
nats_start() {
    local port
    port=$(free_port)
    nats_start_raw n1 -p "$port"
    NATS_URL=nats://127.0.0.1:$port
    nats_wait_js "$NATS_URL"
}

# Three servers in one JetStream cluster; sets NATS_URLS (all three, comma-
# separated), NATS_URL1..3, NATS_PORT1..3 and NATS_CPORT1..3 (routes).
nats_start_cluster() {
    local i j routes
    for i in 1 2 3; do
        printf -v "NATS_PORT$i" '%s' "$(free_port)"
        printf -v "NATS_CPORT$i" '%s' "$(free_port)"
    done
    for i in 1 2 3; do
        routes=
        for j in 1 2 3; do
            [ "$j" = "$i" ] && continue
            local cp="NATS_CPORT$j"
            routes="${routes:+$routes,}nats://127.0.0.1:${!cp}"
        done
        local p="NATS_PORT$i" c="NATS_CPORT$i"
        nats_start_raw "n$i" -p "${!p}" --cluster_name kvtap \
            --cluster "nats://127.0.0.1:${!c}" --routes "$routes"
        printf -v "NATS_URL$i" 'nats://127.0.0.1:%s' "${!p}"
    done
    NATS_URLS="$NATS_URL1,$NATS_URL2,$NATS_URL3"
    for i in 1 2 3; do
        local u="NATS_URL$i"
        nats_wait_js "${!u}" 20 || return 1
    done
}

nats_stop_all() {
    local p
    for p in "${NATS_PIDS[@]}"; do
        kill "$p" 2>/dev/null
    done
    for p in "${NATS_PIDS[@]}"; do
        wait "$p" 2>/dev/null
    done
    NATS_PIDS=()
    return 0
}

# One server with users and permissions; sets NATS_HOSTPORT and NATS_URL
# (as admin, who may do anything).  The others may do anything but:
#   nopub     publish to kvtap.>               (a relay without the stream)
#   nocreate  publish to $JS.API.STREAM.CREATE.>
#   noapi     publish to $JS.API.>              (no JetStream API at all)
#   noconsume publish to $JS.API.CONSUMER.>     (a reader without consumers)
#   nosub     subscribe to _INBOX.>             (no answer can reach it)
# each with the password "p".
nats_start_users() {
    local port conf=$BATS_TEST_TMPDIR/users.conf
    port=$(free_port)
    cat >"$conf" <<'CONF'
authorization {
  users = [
    { user: admin, password: a }
    { user: nopub, password: p, permissions: { publish: { allow: [">"], deny: ["kvtap.>"] } } }
    { user: nocreate, password: p, permissions: { publish: { allow: [">"], deny: ["$JS.API.STREAM.CREATE.>"] } } }
    { user: noapi, password: p, permissions: { publish: { allow: [">"], deny: ["$JS.API.>"] } } }
    { user: noconsume, password: p, permissions: { publish: { allow: [">"], deny: ["$JS.API.CONSUMER.>"] } } }
    { user: nosub, password: p, permissions: { subscribe: { allow: [">"], deny: ["_INBOX.>"] } } }
  ]
}
CONF
    nats_start_raw n1 -p "$port" -c "$conf"
    NATS_HOSTPORT=127.0.0.1:$port
    NATS_URL=nats://admin:a@$NATS_HOSTPORT
    nats_wait_js "$NATS_URL"
}
