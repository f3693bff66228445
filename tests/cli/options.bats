#!/usr/bin/env bats
# One set of option parsers (cmd/common/cli.h, docs/cli.md#options): every
# tool gives the same message, the same limits and exit status 2 for a bad
# duration, count, size or rate, and every --help has the same sections.

load helpers
bats_require_minimum_version 1.5.0

# Runs "$@" and expects exit 2, nothing on stdout and exactly the usage
# error $MSG followed by the hint on stderr.
usage_error() {
    local want=$1
    shift
    run --separate-stderr "$@"
    assert_equal "$status" 2
    assert_output ''
    assert_equal "$stderr" "$want
Try '$1 --help'."
}

@test "a bad duration: one message in every tool" {
    usage_error "kvsub: --idle: 'soon' is not a duration (e.g. 250ms, 5s, 2m)" \
        kvsub --idle soon tcp://h:1
    usage_error "kvreplay: --timeout: 'soon' is not a duration (e.g. 250ms, 5s, 2m)" \
        kvreplay -t soon tcp://h:1
    usage_error "kvpub: --delay: 'soon' is not a duration (e.g. 250ms, 5s, 2m)" \
        kvpub --delay soon tcp://127.0.0.1:1
    usage_error "kvindex: --timeout: 'soon' is not a duration (e.g. 250ms, 5s, 2m)" \
        kvindex ping -t soon
    usage_error "kvindex: --snapshot-every: '1e3' is not a duration (e.g. 250ms, 5s, 2m)" \
        kvindex serve --snapshot-every 1e3
}

@test "a zero timeout or interval is out of range; so is more than a week" {
    usage_error "kvsub: --idle: '0' is out of range (1ms..168h)" \
        kvsub --idle 0 tcp://h:1
    usage_error "kvsub: --duration: '0s' is out of range (1ms..168h)" \
        kvsub --duration 0s tcp://h:1
    usage_error "kvsub: --replay-timeout: '0ms' is out of range (1ms..168h)" \
        kvsub --replay-timeout 0ms tcp://h:1
    usage_error "kvreplay: --timeout: '0' is out of range (1ms..168h)" \
        kvreplay --timeout 0 tcp://h:1
    usage_error "kvindex: --timeout: '0' is out of range (1ms..168h)" \
        kvindex stats -t 0
    usage_error "kvindex: --snapshot-every: '0' is out of range (100ms..168h)" \
        kvindex serve --snapshot-every 0
    usage_error "kvpub: --hold: '169h' is out of range (0..168h)" \
        kvpub --hold 169h tcp://127.0.0.1:1
    usage_error "kvsub: --idle: '10081m' is out of range (1ms..168h)" \
        kvsub --idle 10081m tcp://h:1
}

@test "work a tool repeats on its own: at most every 100ms (or 0, off, where that exists)" {
    usage_error "kvindex: --snapshot-every: '1ms' is out of range (100ms..168h)" \
        kvindex serve --snapshot-every 1ms
    usage_error "kvindex: --snapshot-every: '0.05' is out of range (100ms..168h)" \
        kvindex serve --snapshot-every 0.05
    usage_error "kvsub: --stats-interval: '10ms' is out of range (100ms..168h)" \
        kvsub --stats-interval 10ms tcp://h:1
    usage_error "kvsub: --warn-idle: '5ms' is out of range (0 or 100ms..168h)" \
        kvsub --warn-idle 5ms tcp://h:1
    usage_error "kvsub: --warn-idle: '169h' is out of range (0 or 100ms..168h)" \
        kvsub --warn-idle 169h tcp://h:1
    usage_error "kvsub: --warn-idle: 'never' is not a duration (e.g. 250ms, 5s, 2m)" \
        kvsub --warn-idle never tcp://h:1
    usage_error "kvjs: --ack-wait: '1ms' is out of range (100ms..168h)" \
        kvjs sub --ack-wait 1ms
    usage_error "kvreplay: --lock-wait: '169h' is out of range (0..168h)" \
        kvreplay --lock-wait 169h tcp://h:1
    # The smallest accepted values parse: the run then fails for want of a
    # peer or an input, not for the value (exit 1 or 0, never 2).
    run kvsub --warn-idle 0 --stats-interval 100ms --duration 1ms tcp://127.0.0.1:9
    assert_success
}

@test "kvstat: the same parsers and messages as every other tool" {
    usage_error "kvstat: --every: '0s' is out of range (1ms..168h)" \
        kvstat rate --every 0s
    usage_error "kvstat: --every: 'soon' is not a duration (e.g. 250ms, 5s, 2m)" \
        kvstat rate --every soon
    usage_error "kvstat: --block-size: '0' is out of range (1..4294967295)" \
        kvstat top --block-size 0
    usage_error "kvstat: --capacity: '-1' is not a whole number" \
        kvstat route --capacity -1
    usage_error "kvstat: --random-seed: '1.5' is not a whole number" \
        kvstat route --random-seed 1.5
    usage_error "kvstat: --seed: 'x' is not a whole number" \
        kvstat route --seed x
}

@test "a bad count: one message in every tool" {
    usage_error "kvsub: --count: 'x' is not a whole number" \
        kvsub -c x tcp://h:1
    usage_error "kvsub: --count: '0' is out of range (1..18446744073709551615)" \
        kvsub -c 0 tcp://h:1
    usage_error "kvsub: --dp-size: '1025' is out of range (1..1024)" \
        kvsub --dp-size 1025 tcp://h:1
    usage_error "kvreplay: --dp-size: '0' is out of range (1..1024)" \
        kvreplay --dp-size 0 tcp://h:1
    usage_error "kvreplay: --from: '-1' is not a whole number" \
        kvreplay --from -1 tcp://h:1
    usage_error "kvpub: --buffer: '0' is out of range (1..100000000)" \
        kvpub --buffer 0 tcp://127.0.0.1:1
    usage_error "kvpub: --wait-subs: '+1' is not a whole number" \
        kvpub --wait-subs +1 tcp://127.0.0.1:1
    usage_error "kvindex: --block-size: '0' is out of range (1..4294967295)" \
        kvindex keys --block-size 0 '[1]'
    usage_error "kvindex: --seed: '18446744073709551616' is out of range (0..18446744073709551615)" \
        kvindex serve --seed 18446744073709551616
}

@test "a bad size or rate: suffixes K, M, G and the same message" {
    usage_error "kvindex: --max-line: '1x' is not a size (e.g. 4096, 64K, 1M)" \
        kvindex serve --max-line 1x
    usage_error "kvindex: --max-line: '2G' is out of range (64..1G)" \
        kvindex serve --max-line 2G
    usage_error "kvindex: --max-line: '63' is out of range (64..1G)" \
        kvindex serve --max-line 63
    usage_error "kvpub: --rate: 'fast' is not a rate (e.g. 100, 100/s, 5/m)" \
        kvpub --rate fast tcp://127.0.0.1:1
    usage_error "kvpub: --rate: '0/s' is not a rate (e.g. 100, 100/s, 5/m)" \
        kvpub --rate 0/s tcp://127.0.0.1:1
}

@test "every --help, and every kvindex subcommand's, has Usage: and Options:" {
    local cmds=(kvsub kvreplay kvpub kvindex "kvindex serve" "kvindex query"
        "kvindex match" "kvindex keys" "kvindex stats" "kvindex pods"
        "kvindex dump" "kvindex ping")
    for c in "${cmds[@]}"; do
        # shellcheck disable=SC2086
        run --separate-stderr $c --help
        assert_success
        assert_equal "$stderr" ''
        assert_line --index 0 --regexp "^Usage: $c( |\$)"
        assert_line 'Options:'
        for s in OUTPUT 'EXIT STATUS' EXAMPLES; do
            assert_line "$s"
        done
    done
}

@test "an unknown option or a missing value: one message in every tool" {
    usage_error "kvsub: unknown option '--nope'" kvsub --nope tcp://h:1
    usage_error "kvsub: unknown option '-x'" kvsub -bx tcp://h:1
    usage_error "kvsub: option '--count' needs a value" kvsub --count
    usage_error "kvreplay: unknown option '--nope'" kvreplay --nope tcp://h:1
    usage_error "kvreplay: option '-t' needs a value" kvreplay -t
    usage_error "kvpub: unknown option '-Z'" kvpub -Z tcp://127.0.0.1:1
    usage_error "kvpub: option '--layout' needs a value" kvpub --layout
    usage_error "kvindex: unknown option '--nope'" kvindex serve --nope
    usage_error "kvindex: option '-s' needs a value" kvindex stats -s
    usage_error "kvindex: unknown option '-Z'" kvindex match -Z
}

@test "kvindex: an option of another subcommand is named as typed" {
    usage_error "kvindex: option '--pods' is not valid for ping" \
        kvindex ping --pods a
    usage_error "kvindex: option '--model' is not valid for stats" \
        kvindex stats --model m
    usage_error "kvindex: option '-m' is not valid for dump" \
        kvindex dump -m m
}

@test "an unknown engine, a bad option, -q/-v/-V: the same in every tool" {
    usage_error "kvsub: --engine: expected auto, vllm, sglang, trtllm, atom, mooncake or llmd-fs, not 'trt'" \
        kvsub --engine trt tcp://h:1
    usage_error "kvreplay: --engine: expected auto, vllm, sglang, trtllm, atom, mooncake or llmd-fs, not 'trt'" \
        kvreplay --engine trt tcp://h:1
    for t in kvsub kvreplay kvpub kvstat kvjs; do
        usage_error "$t: unknown option '--bogus'" "$t" --bogus
        usage_error "$t: unknown option '-Z'" "$t" -Z
        run --separate-stderr "$t" -V
        assert_success
        assert_output --regexp "^$t [0-9]+\.[0-9]+\.[0-9]+ \("
    done
    usage_error "kvindex: unknown option '--bogus'" kvindex serve --bogus
}

@test "every long option a man page lists is in the tool's --help" {
    local t o sc help missing=
    for t in kvsub kvreplay kvpub kvindex kvstat kvjs; do
        help=$("$t" --help 2>&1
            for sc in serve query match keys stats pods dump ping clear \
                pub sub info snap; do
                "$t" "$sc" --help 2>/dev/null || true
            done)
        for o in $(grep -o '^\.\(It\|Op\) Fl -[a-z][a-z0-9-]*' \
            "$KVTAP_TOP/man/$t.1" | awk '{ print $NF }' | sort -u); do
            grep -q -e "-$o\b" <<<"$help" || missing="$missing $t:-$o"
        done
    done
    assert_equal "$missing" ""
}
