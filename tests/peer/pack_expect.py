"""Expected msgpack bytes for the C unit tests, written by python3-msgpack.

The C tests of lib/pack (tests/unit/test_pack.c) and of wire_encode
(tests/unit/test_wire.c) compare kvtap's bytes with the bytes in two
checked-in files that this script generates.  Every expected byte comes
from python msgpack (use_bin_type=True), the same rules msgspec follows:
integers in their smallest form, float64, str8 from 32 bytes, bin8/16/32.
Nothing here calls kvtap code, and the C tests never compute an expected
encoding themselves.

  pack_expect.py [--top DIR]          rewrite both files
  pack_expect.py --check [--top DIR]  exit 1 when a file differs from
                                      what it would write

tests/data/pack_expect.txt is written whole from the tables below.
tests/data/wire_encode.txt holds hand-written cases (a payload in the
test notation, decoded and re-encoded by the C test); only their "hex:"
lines are generated: the bytes of "want:" (or of "in:" when the case
must round-trip), compiled from the notation here.
"""

import json
import msgpack
import os
import re
import sys

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

PACKER = msgpack.Packer(use_bin_type=True)


def packb(v):
    return msgpack.packb(v, use_bin_type=True)


# ---- scalars and headers ------------------------------------------------

UINTS = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32,
         2**63 - 1, 2**63, 2**64 - 1]
INTS = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32,
        2**63 - 1, -1, -32, -33, -128, -129, -32768, -32769, -2**31,
        -2**31 - 1, -2**63]
FLOATS = [0.0, -0.0, 1.5, -2.25, 1700000000.25, 1e300, 5e-324,
          float("inf"), float("-inf"), float("nan")]
LENGTHS = [0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536, 2**32 - 1]


def scalar_lines():
    out = ["# kind value expected-bytes (hex); str/bin: the header for a",
           "# body of that many 'x' bytes; array/map: the header alone"]
    out += ["nil - " + packb(None).hex(), "bool 1 " + packb(True).hex(),
            "bool 0 " + packb(False).hex()]
    out += ["uint %d %s" % (v, packb(v).hex()) for v in UINTS]
    out += ["int %d %s" % (v, packb(v).hex()) for v in INTS]
    out += ["f64 %s %s" % (v.hex(), packb(v).hex()) for v in FLOATS]
    for n in LENGTHS:
        if n <= 65536:
            out.append("str %d %s" % (n, packb("x" * n)[:-n or None].hex()))
            out.append("bin %d %s" % (n, packb(b"x" * n)[:-n or None].hex()))
        out.append("array %d %s" % (n, PACKER.pack_array_header(n).hex()))
        out.append("map %d %s" % (n, PACKER.pack_map_header(n).hex()))
    return out


# ---- JSON text -> msgpack -------------------------------------------------

JSON_CASES = [
    "null", "true", "false", "0", "-0", "7", "-1", "127", "128", "-32",
    "-33", "255", "256", "-129", "65536", "4294967296", "-2147483649",
    "18446744073709551615", "-9223372036854775808", "9223372036854775807",
    "9223372036854775808", "0.0", "-0.0", "1.5", "-2.25e-3", "1e300",
    "1E+2", "2.5e-3", "5e-324", "1e-400", "0.1",
    "123456789012345678901234567890.5", "1700000000.25",
    '""', '"GPU"', '"esc \\" \\\\ \\/ \\b \\f \\n \\r \\t"',
    '"\\u00e9\\u4e2d\\u0000"', '"\\ud83d\\ude00 pair"', '"lone \\ud800 x"',
    '"raw \u00e9 \U0001f600"', '"' + "a" * 31 + '"', '"' + "b" * 32 + '"',
    '"' + "c" * 255 + '"', '"' + "d" * 256 + '"',
    "[]", "{}", "[null]", "[1,[2,[3,[]]]]", '{"a":1,"b":[true,null]}',
    '{"\\u00e9":"k","a":{"b":{}}}', '[null,["a",["mm",0]]]',
    " \n\t[ 1 , 2 ]\r\n ", "[" + ",".join(["0"] * 15) + "]",
    "[" + ",".join(["0"] * 16) + "]",
    "{" + ",".join('"k%d":%d' % (i, i) for i in range(16)) + "}",
    '{"a":1,"a":2}', "[" * 64 + "]" * 64,
]


def fix_str(s):
    """A lone surrogate becomes U+FFFD, as kvtap's JSON reader decodes it."""
    return s.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class Raw(bytes):
    pass


def pack_value(v):
    """Python msgpack's bytes for v; map pairs stay in order (duplicated
    keys kept, as kvtap converts JSON), Raw bytes are copied verbatim."""
    if isinstance(v, Raw):
        return bytes(v)
    if isinstance(v, JsonPairs):
        return PACKER.pack_map_header(len(v)) + b"".join(
            pack_value(k) + pack_value(x) for k, x in v)
    if isinstance(v, list):
        return PACKER.pack_array_header(len(v)) + b"".join(
            pack_value(x) for x in v)
    if isinstance(v, str):
        return packb(fix_str(v))
    return packb(v)


class JsonPairs(list):
    pass


def json_lines():
    out = ["# json input-text(hex) expected-bytes(hex)"]
    for text in JSON_CASES:
        v = json.loads(text, object_pairs_hook=JsonPairs)
        shown = text if len(text) <= 60 else text[:57] + "..."
        out.append("# " + shown.encode("unicode_escape").decode("ascii"))
        out.append("json %s %s" % (text.encode("utf-8").hex(),
                                   pack_value(v).hex()))
    return out


# ---- the wire tests' notation ---------------------------------------------

TOKEN = re.compile(r'\s*(?:[,:\s]\s*)*(?:([\[\]{}])|([hx]?)"([^"]*)"|'
                   r'(nil|true|false)|([-+0-9.e]+))')


def parse_notation(s):
    """The C test's notation: [..] {k: v} "str" h"bin" x"raw" nil 1 1.5."""
    pos = 0
    values = []
    stack = [values]
    while True:
        m = TOKEN.match(s, pos)
        if m is None:
            if s[pos:].strip(" ,:\n"):
                raise ValueError("bad notation at: " + s[pos:])
            break
        pos = m.end()
        br, kind, text, word, num = m.groups()
        if br in ("[", "{"):
            stack.append(JsonPairs() if br == "{" else [])
            continue
        if br in ("]", "}"):
            done = stack.pop()
            if isinstance(done, JsonPairs):
                done = JsonPairs(zip(done[0::2], done[1::2]))
            stack[-1].append(done)
            continue
        if text is not None:
            raw = bytes.fromhex(text) if kind else None
            v = text if not kind else (raw if kind == "h" else Raw(raw))
        elif word is not None:
            v = {"nil": None, "true": True, "false": False}[word]
        else:
            v = float(num) if "." in num else int(num)
        stack[-1].append(v)
    return values


def wire_lines(path):
    out = []
    src = None
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for line in lines:
        if line.startswith("in: "):
            src = line[4:]
        elif line.startswith("want: "):
            src = line[6:]
        elif line.startswith("hex: "):
            line = "hex: " + b"".join(
                pack_value(v) for v in parse_notation(src)).hex()
        out.append(line)
    return out[:-1] if out and out[-1] == "" else out


def main():
    args = sys.argv[1:]
    check = "--check" in args
    top = args[args.index("--top") + 1] if "--top" in args else TOP
    pack_file = os.path.join(top, "tests", "data", "pack_expect.txt")
    wire_file = os.path.join(top, "tests", "data", "wire_encode.txt")
    bad = 0
    for path, lines in ((pack_file, scalar_lines() + json_lines()),
                        (wire_file, wire_lines(wire_file))):
        text = "\n".join(lines) + "\n"
        old = open(path, encoding="utf-8").read() if os.path.exists(
            path) else None
        if text == old:
            continue
        if check:
            print("%s: differs from what python msgpack writes" % path)
            bad = 1
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    return bad


if __name__ == "__main__":
    sys.exit(main())
