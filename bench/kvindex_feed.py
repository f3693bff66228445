#!/usr/bin/python3
"""kvindex_feed.py - a paced input for `kvindex serve`, for
bench/60-kvindex-socket.sh's busy round trips.

    kvindex_feed.py RATE FIRST.ndjson PACED.ndjson [GO-FILE]

Writes FIRST whole to stdout (the index to match against), then, once
GO-FILE exists (the caller saw the server take FIRST in: pacing from
before would make a backlog that it then reads at full speed), the lines
of PACED at RATE lines per second, from its start again at its end, until
stdout closes (the server ended) or a signal.  The schedule is absolute:
a late tick writes what it owes, so the rate holds on average as long as
the reader keeps up.
"""
import itertools
import os
import sys
import time

TICK = 0.005  # seconds between writes


def main(argv):
    if len(argv) not in (4, 5):
        sys.exit(__doc__)
    rate = float(argv[1])
    out = sys.stdout.buffer
    try:
        with open(argv[2], "rb") as f:
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
        out.flush()
        while len(argv) == 5 and not os.path.exists(argv[4]):
            time.sleep(TICK)
        sent = 0
        start = time.monotonic()
        with open(argv[3], "rb") as f:
            while True:
                owed = int((time.monotonic() - start) * rate) - sent
                if owed > 0:
                    lines = list(itertools.islice(f, owed))
                    if len(lines) < owed:
                        f.seek(0)
                    out.write(b"".join(lines))
                    out.flush()
                    sent += len(lines)
                time.sleep(TICK)
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
