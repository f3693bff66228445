#!/usr/bin/python3
"""A TCP relay in front of a NATS server that breaks one thing on purpose.

Usage: natsrelay.py TARGET_PORT reset BYTES
       natsrelay.py TARGET_PORT drop N
       natsrelay.py TARGET_PORT swap N
       natsrelay.py TARGET_PORT dropack N
       natsrelay.py TARGET_PORT dropmsg N

Listens on a free port of 127.0.0.1 and prints it on a line of its own.
Each connection accepted is relayed to 127.0.0.1:TARGET_PORT.  Runs until
killed.  Each fault happens once.

reset: the first connection to carry BYTES bytes from its client has both
of its sockets closed with SO_LINGER 0, so that each peer gets a reset
(ECONNRESET) on its next read or write, as when a server dies or a
middlebox drops the flow.  Every other connection is relayed untouched
(short ones such as a stream lookup never reach BYTES).

drop and swap read the NATS protocol (PUB, HPUB, MSG, HMSG and the rest)
and count the messages the clients publish to subjects that do not start
with "$" (the JetStream API's do), over all connections, from 1.  The
connection stays up, so the publisher sees no error.  dropack counts the
acknowledgments instead (messages to subjects starting "$JS.ACK.").

drop: the Nth message is left out.  The batches after it are stored and
acknowledged; it is never answered.

swap: the Nth message is held back and delivered right after the next
one, and the server's answers to both (the messages to their reply
subjects) are left out.  The stream stores the two in the wrong order,
and the publisher learns of neither, as when a server dies with both
stored and the two took different paths to the stream.

dropack: the Nth acknowledgment a reader sends is left out, as when the
consumer's leader changes before it applied it.  The server delivers that
message again once the consumer's ack wait has passed, after newer ones.

dropmsg: the Nth JetStream delivery the server sends (a message whose
reply subject starts "$JS.ACK."), over all connections, is left out, as
when a connection breaks with it in flight.  The server delivers it again
once the consumer's ack wait has passed, after newer ones.
"""

import socket
import struct
import sys
import threading

RESET = struct.pack("ii", 1, 0)
ONCE = threading.Lock()  # held once the fault was injected
LOCK = threading.Lock()  # guards the two below
counted = 0  # the messages the mode counts, over all connections
silenced = set()  # reply subjects whose answers are left out


def say(text):
    print(text, file=sys.stderr, flush=True)


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


def pump_reset(src, dst, limit):
    """Copies src to dst; after limit bytes (None: never) resets both."""
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
                    say("reset after %d bytes" % limit)
                    return
                limit = None
    except OSError:
        pass
    close_both(src, dst)


def operations(buf, start):
    """The whole protocol operations in buf from start, as (words, bytes),
    and where the first incomplete one starts."""
    ops = []
    while True:
        eol = buf.find(b"\r\n", start)
        if eol < 0:
            break
        words = buf[start:eol].split()
        end = eol + 2
        if words and words[0] in (b"PUB", b"HPUB", b"MSG", b"HMSG"):
            end += int(words[-1]) + 2
        if len(buf) < end:
            break
        ops.append((words, buf[start:end]))
        start = end
    return ops, start


def published_to_stream(words):
    return words and words[0] in (b"PUB", b"HPUB") and \
        not words[1].startswith(b"$")


def ack(words):
    return words and words[0] in (b"PUB", b"HPUB") and \
        words[1].startswith(b"$JS.ACK.")


def delivery(words):
    return words and words[0] in (b"MSG", b"HMSG") and \
        len(words) == (5 if words[0] == b"MSG" else 6) and \
        words[3].startswith(b"$JS.ACK.")


def nth(n):
    """Counts one message of the mode; true for the nth, and only once."""
    global counted
    with LOCK:
        counted += 1
        at = counted
    return at == n and ONCE.acquire(blocking=False)


def reply_of(words):
    """The reply subject of a PUB or HPUB, or None."""
    return words[2] if len(words) == (4 if words[0] == b"PUB" else 5) \
        else None


def pump_protocol(src, dst, edit):
    """Copies src to dst one protocol operation at a time; edit(words, op)
    returns the bytes to send in its place."""
    buf, start = b"", 0
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            buf = buf[start:] + data
            ops, start = operations(buf, 0)
            out = b"".join(edit(words, op) for words, op in ops)
            if out:
                dst.sendall(out)
    except OSError:
        pass
    close_both(src, dst)


def client_edit(mode, n):
    """The edit of a connection's client side for drop, swap or dropack."""
    held = []

    def edit(words, op):
        if not (ack(words) if mode == "dropack" else
                published_to_stream(words)):
            return op
        if nth(n):
            say("%s message %d on %s" % ("swapped" if mode == "swap" else
                                         "dropped", n, words[1].decode()))
            if mode != "swap":
                return b""
            with LOCK:
                silenced.add(reply_of(words))
            held.append(op)
            return b""
        if held:
            with LOCK:
                silenced.add(reply_of(words))
            op += held.pop()
        return op

    return edit


def delivery_edit(n):
    """The edit of a connection's server side for dropmsg."""

    def edit(words, op):
        if delivery(words) and nth(n):
            say("dropped delivery %d of %s" % (n, words[3].decode()))
            return b""
        return op

    return edit


def passthrough(words, op):
    return op


def server_edit(words, op):
    """Leaves out the server's answers to silenced reply subjects."""
    if words and words[0] in (b"MSG", b"HMSG"):
        with LOCK:
            if words[1] in silenced:
                silenced.discard(words[1])
                say("left out the answer to %s" % words[1].decode())
                return b""
    return op


def relay(client, target_port, mode, arg):
    server = socket.create_connection(("127.0.0.1", target_port))
    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if mode == "reset":
        up = (pump_reset, (client, server, arg))
        down = (pump_reset, (server, client, None))
    elif mode == "dropmsg":
        up = (pump_protocol, (client, server, passthrough))
        down = (pump_protocol, (server, client, delivery_edit(arg)))
    else:
        up = (pump_protocol, (client, server, client_edit(mode, arg)))
        down = (pump_protocol, (server, client, server_edit))
    for target, args in (up, down):
        threading.Thread(target=target, args=args, daemon=True).start()


def main():
    if len(sys.argv) != 4 or sys.argv[2] not in ("reset", "drop", "swap",
                                                  "dropack", "dropmsg"):
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
