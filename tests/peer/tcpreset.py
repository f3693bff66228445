#!/usr/bin/python3
"""A TCP relay that resets one connection part way through.

Usage: tcpreset.py TARGET_PORT BYTES

Listens on a free port of 127.0.0.1 and prints it on a line of its own.
Each connection accepted is relayed to 127.0.0.1:TARGET_PORT.  The first
connection to carry BYTES bytes from its client has both of its sockets
closed with SO_LINGER 0, so that each peer gets a reset (ECONNRESET) on its
next read or write, as when a server dies or a middlebox drops the flow.
That happens once; every other connection is relayed untouched (short ones
such as a stream lookup never reach BYTES).  Runs until killed.
"""

import socket
import struct
import sys
import threading

RESET = struct.pack("ii", 1, 0)


def reset(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
        sock.close()
    except OSError:
        pass


CUT = threading.Lock()  # held once a connection was reset


def pump(src, dst, limit, on_limit):
    """Copies src to dst; after limit bytes (None: no limit) calls on_limit
    unless another connection was reset already."""
    seen = 0
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
            seen += len(data)
            if limit is not None and seen >= limit:
                if CUT.acquire(blocking=False):
                    on_limit()
                    return
                limit = None
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def relay(client, target_port, limit):
    server = socket.create_connection(("127.0.0.1", target_port))
    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def cut():
        reset(client)
        reset(server)
        print("reset after %d bytes" % limit, file=sys.stderr, flush=True)

    threading.Thread(target=pump, args=(client, server, limit, cut),
                     daemon=True).start()
    threading.Thread(target=pump, args=(server, client, None, None),
                     daemon=True).start()


def main():
    target_port, limit = int(sys.argv[1]), int(sys.argv[2])
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    print(lsock.getsockname()[1], flush=True)
    while True:
        client, _ = lsock.accept()
        relay(client, target_port, limit)


if __name__ == "__main__":
    main()
