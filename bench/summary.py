#!/usr/bin/env python3
"""summary.py - the one table `make bench` ends with: every figure of
issue 12's speed table, what it is now, its target and how far from it.

  summary.py add FILE KEY NOW RATIO   append one measured figure to FILE
  summary.py print FILE [LOAD]        print the table; a figure nothing
                                      measured says "not measured"

The benchmarks (bench/*.sh and the C programs they run) add a row when
KVTAP_BENCH_SUMMARY names a file; bench/run prints the table.  NOW is the
figure as text, RATIO is a number >= 1 when the target is met (now/target
for a floor, target/now for a ceiling).  A key measured twice keeps its
last value.
"""
import sys

# Issue 12's table, in its order: key, what, target.
FIGURES = [
    ("ingest", "kvindex ingest, bench/60 stream, events per CPU second",
     ">= 1.5M"),
    ("ingest_reader", "  of it, the reader alone (lines + ndjson_parse_line)",
     "-"),
    ("e2e_index", "kvsub | kvindex serve over tcp, x receive-and-count floor",
     ">= 0.8x"),
    ("match_tokens_shared",
     "match of 2,048 tokens from tokens, in process, 1M entries (shared)",
     "<= 5 us"),
    ("match_tokens_unique",
     "match of 2,048 tokens from tokens, in process, 1M entries (unique)",
     "<= 5 us"),
    ("block_keys", "  of it, the block keys of the prompt (aibrix)", "-"),
    ("cpu_ping", "server CPU per request: ping", "<= 5 us"),
    ("cpu_match", "server CPU per request: 2,048-token match", "<= 15 us"),
    ("cpu_ping_1core", "  ping, client on the server's core (taskset)", "-"),
    ("cpu_match_1core", "  match, client on the server's core (taskset)",
     "-"),
    ("request_inproc",
     "  of it, in process: parse, match, reply (kvproto_handle, shared)",
     "-"),
    ("request_ids", "  of it, the request's 2,048 token ids, in process",
     "-"),
    ("cpu_floor", "  floor: a bare poll/read/send server, unpinned / 1 core",
     "-"),
    ("p99", "socket match round trip p99, 1M entries", "<= 100 us"),
    ("p99_busy",
     "socket match p99, 4 concurrent clients, ingesting 200k events/s",
     "<= 150 us"),
    ("p99_busy_idle", "  the same 4 clients before ingest starts", "-"),
    ("rss", "RSS per (pod, block), nothing shared, 1M entries", "<= 64 B"),
    ("batch", "batched match, prompts/s vs one at a time", "reported"),
]


def add(path, key, now, ratio):
    if key not in dict((k, w) for k, w, _ in FIGURES):
        sys.exit("summary.py: unknown figure %r" % key)
    with open(path, "a") as f:
        f.write("%s\t%s\t%s\n" % (key, now, ratio))


def table(path, load):
    got = {}
    try:
        with open(path) as f:
            for line in f:
                k, now, ratio = line.rstrip("\n").split("\t")
                got[k] = (now, ratio)
    except FileNotFoundError:
        pass
    rows = [(what, got.get(key, ("not measured", "-"))[0], target,
             got.get(key, ("", "-"))[1]) for key, what, target in FIGURES]
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    print("%-*s  %-*s  %-*s  %s" % (w[0], "what", w[1], "now", w[2],
                                    "target", "ratio (>= 1 meets)"))
    print("  ".join("-" * n for n in w + [18]))
    for what, now, target, ratio in rows:
        if ratio not in ("-", ""):
            ratio = "%.2f" % float(ratio)
        print("%-*s  %-*s  %-*s  %s" % (w[0], what, w[1], now, w[2], target,
                                        ratio))
    if load:
        print("(load average %s while it ran)" % load)


def main(argv):
    if len(argv) == 6 and argv[1] == "add":
        add(argv[2], argv[3], argv[4], argv[5])
    elif len(argv) in (3, 4) and argv[1] == "print":
        table(argv[2], argv[3] if len(argv) == 4 else "")
    else:
        sys.exit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
