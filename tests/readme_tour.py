#!/usr/bin/python3
"""Runs the ```console blocks of a Markdown file and checks their output.

Every line "$ command" of every console block runs, in order, in one bash
session (so background jobs started with & live on); the lines that follow
a command up to the next command or the end of the block are its expected
output, compared exactly.  Fixed ports and paths of the document are
replaced by free ones so the run cannot collide with anything.

usage: readme_tour.py FILE TOP WORKDIR
"""
import os
import re
import socket
import subprocess
import sys


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def blocks(text):
    """Yields (command, expected output lines) in document order."""
    for body in re.findall(r"```console\n(.*?)```", text, re.S):
        cmd, out = None, []
        for line in body.splitlines():
            if line.startswith("$ "):
                if cmd is not None:
                    yield cmd, out
                cmd, out = line[2:], []
            elif cmd is not None:
                out.append(line)
        if cmd is not None:
            yield cmd, out


def main():
    doc, top, work = sys.argv[1:4]
    subst = {
        "5557": str(free_port()),
        "5600": str(free_port()),
        "tests/data/": os.path.join(top, "tests/data/"),
    }
    steps = list(blocks(open(doc).read()))
    if not steps:
        print("no console blocks in", doc)
        return 1
    script = ["set -u", "trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT"]
    for k, (cmd, _) in enumerate(steps):
        for a, b in subst.items():
            cmd = cmd.replace(a, b)
        script.append("echo '@@@ %d'" % k)
        script.append(cmd)
    # The README uses kvindex's default socket: here, one of this run's own.
    env = dict(os.environ, XDG_RUNTIME_DIR=work)
    env.pop("KVINDEX_SOCKET", None)
    run = subprocess.run(["bash", "-c", "\n".join(script)], cwd=work,
                         env=env, capture_output=True, text=True, timeout=120)
    got = {}
    cur = None
    for line in run.stdout.splitlines():
        m = re.fullmatch(r"@@@ (\d+)", line)
        if m:
            cur = int(m.group(1))
            got[cur] = []
        elif cur is not None:
            got[cur].append(line)
    bad = 0
    for k, (cmd, want) in enumerate(steps):
        have = got.get(k)
        if have != want:
            bad += 1
            print("step %d: $ %s" % (k, cmd))
            print("  want: %r" % (want,))
            print("  got:  %r" % (have,))
    if bad:
        print("stderr:", run.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
