#!/usr/bin/python3
"""Sends one request to a NATS server and prints the reply's payload.

Usage: natsreq.py PORT SUBJECT [PAYLOAD]

Speaks the NATS client protocol itself (CONNECT, SUB, PUB, MSG) to
127.0.0.1:PORT, so that a test can ask the JetStream API what no kvjs
command prints, such as a consumer's ack floor
($JS.API.CONSUMER.INFO.<stream>.<name>).  Exits 1 when no reply comes
within 5 s.
"""

import socket
import sys

INBOX = b"_INBOX.natsreq"


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.split("\n\n")[1])
    port, subject = int(sys.argv[1]), sys.argv[2].encode()
    payload = sys.argv[3].encode() if len(sys.argv) == 4 else b""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        rd = sock.makefile("rb")
        rd.readline()  # the server's INFO
        sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n'
                     b"SUB " + INBOX + b" 1\r\n"
                     b"PUB %s %s %d\r\n%s\r\n" %
                     (subject, INBOX, len(payload), payload))
        while True:
            words = rd.readline().split()
            if not words:
                sys.exit("natsreq.py: the server closed the connection")
            if words[0] == b"PING":
                sock.sendall(b"PONG\r\n")
            elif words[0] == b"-ERR":
                sys.exit("natsreq.py: " + b" ".join(words).decode())
            elif words[0] == b"MSG":
                data = rd.read(int(words[-1]) + 2)[:-2]
                print(data.decode())
                return
    except (OSError, socket.timeout) as e:
        sys.exit("natsreq.py: %s" % e)


if __name__ == "__main__":
    main()
