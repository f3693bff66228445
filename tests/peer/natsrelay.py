#!/usr/bin/python3
"""A TCP relay in front of a NATS server that breaks one thing on purpose.

Usage: natsrelay.py TARGET_PORT reset BYTES
       natsrelay.py TARGET_PORT drop N

Listens on a free port of 127.0.0.1 and prints it on a line of its own.
Each connection accepted is relayed to 127.0.0.1:TARGET_PORT.  Runs until
killed.

reset: the first connection to carry BYTES bytes from its client has both
of its sockets closed with SO_LINGER 0, so that each peer gets a reset
(ECONNRESET) on its next read or write, as when a server dies or a
middlebox drops the flow.  That happens once; every other connection is
relayed untouched (short ones such as a stream lookup never reach BYTES).

drop: the relay reads the client's protocol (CONNECT, PUB, HPUB, SUB, ...)
and leaves out the Nth message published to a subject that does not start
with "$" (the JetStream API's subjects do), counted over all connections,
from 1.  The connection stays up, so the publisher gets no error and later
messages are stored and acknowledged: the one left out is simply never
answered.  That happens once.
"""

import socket
import struct
import sys
import threading

RESET = struct.pack("ii", 1, 0)
ONCE = threading.Lock()  # held once the fault was injected
COUNT_LOCK = threading.Lock()
published = 0


def reset(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
        sock.close()
    except OSError:
        pass


def close_both(src, dst):
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def pump(src, dst):
    """Copies src to dst untouched."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    close_both(src, dst)


def pump_reset(src, dst, limit):
    """Copies src to dst; after limit bytes resets both, once overall."""
    seen = 0
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
            seen += len(data)
            if limit is not None and seen >= limit:
                if ONCE.acquire(blocking=False):
                    reset(src)
                    reset(dst)
                    print("reset after %d bytes" % limit, file=sys.stderr,
                          flush=True)
                    return
                limit = None
    except OSError:
        pass
    close_both(src, dst)


def message_size(line):
    """The payload size announced by a PUB or HPUB line, or None."""
    words = line.split()
    if words and words[0] in (b"PUB", b"HPUB"):
        return int(words[-1]), words[1]
    return None, None


def pump_drop(src, dst, nth):
    """Copies the client's protocol from src to dst, leaving out the nth
    message published to a subject outside "$"."""
    global published
    buf = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            buf += data
            out = []
            while True:
                eol = buf.find(b"\r\n")
                if eol < 0:
                    break
                size, subject = message_size(buf[:eol])
                end = eol + 2 if size is None else eol + 2 + size + 2
                if len(buf) < end:
                    break
                keep = True
                if size is not None and not subject.startswith(b"$"):
                    with COUNT_LOCK:
                        published += 1
                        hit = published == nth
                    if hit and ONCE.acquire(blocking=False):
                        keep = False
                        print("dropped message %d on %s" %
                              (nth, subject.decode()), file=sys.stderr,
                              flush=True)
                if keep:
                    out.append(buf[:end])
                buf = buf[end:]
            if out:
                dst.sendall(b"".join(out))
    except OSError:
        pass
    close_both(src, dst)


def relay(client, target_port, mode, arg):
    server = socket.create_connection(("127.0.0.1", target_port))
    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if mode == "reset":
        up = threading.Thread(target=pump_reset, args=(client, server, arg))
    else:
        up = threading.Thread(target=pump_drop, args=(client, server, arg))
    up.daemon = True
    up.start()
    threading.Thread(target=pump, args=(server, client), daemon=True).start()


def main():
    if len(sys.argv) != 4 or sys.argv[2] not in ("reset", "drop"):
        sys.exit(__doc__.split("\n\n")[1])
    target_port, mode, arg = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    print(lsock.getsockname()[1], flush=True)
    while True:
        client, _ = lsock.accept()
        relay(client, target_port, mode, arg)


if __name__ == "__main__":
    main()
