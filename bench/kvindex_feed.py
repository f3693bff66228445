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

The feeder shares the machine with the server and the clients it is
there to load, so a tick costs it one write of a slice of PACED, read
into memory with the offset of every line up front: picking the lines
one by one (itertools.islice, bytes.join) took 30% of a core at 200,000
lines a second, on 2 cores.
"""
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
        with open(argv[3], "rb") as f:
            paced = f.read()
        # starts[k]: the offset of line k; starts[-1]: the end of the data.
        starts = [0]
        nl = paced.find(b"\n")
        while nl >= 0:
            starts.append(nl + 1)
            nl = paced.find(b"\n", nl + 1)
        lines = len(starts) - 1
        if lines == 0:
            sys.exit("kvindex_feed.py: %s holds no complete line" % argv[3])
        view = memoryview(paced)
        while len(argv) == 5 and not os.path.exists(argv[4]):
            time.sleep(TICK)
        sent = 0
        start = time.monotonic()
        while True:
            owed = int((time.monotonic() - start) * rate) - sent
            while owed > 0:
                at = sent % lines
                n = min(owed, lines - at)
                out.write(view[starts[at]:starts[at + n]])
                sent += n
                owed -= n
            out.flush()
            time.sleep(TICK)
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
