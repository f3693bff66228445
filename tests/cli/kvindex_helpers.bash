# What the kvindex bats files share.  Load after helpers: load kvindex_helpers

# Waits until the server on $S has read at least $1 input lines.
wait_lines() {
    local i n
    for i in $(seq 100); do
        n=$(kvindex stats -r -s "$S" | jq .lines)
        [ "$n" -ge "$1" ] && return 0
        sleep 0.05
    done
    return 1
}
