#!/usr/bin/env bats
# scripts/check-docs on small fake trees: a citation of a docs file or
# heading that exists passes; a missing file, a missing heading or a
# research note that is not in the repository fails with PATH:LINE.
#
# The citations are written with DOCS/ for docs/ (and the research notes'
# names in pieces), so that check-docs run on this repository does not
# take this file's examples for citations; put() and want() substitute.

load helpers
bats_require_minimum_version 1.5.0

CHECK="$KVTAP_TOP/scripts/check-docs"
WF="wire-""format.md"
IS="index-""semantics"

# Writes stdin to $R/$1 with DOCS/, WF and IS replaced.
put() {
    mkdir -p "$(dirname "$R/$1")"
    sed -e 's|DOCS/|docs/|g' -e "s|WF|$WF|g" -e "s|IS|$IS|g" >"$R/$1"
}

# Expects check-docs to print exactly stdin (substituted like put).
want() {
    sed -e 's|DOCS/|docs/|g' -e "s|WF|$WF|g" -e "s|IS|$IS|g" >"$R.want"
    assert_output "$(cat "$R.want")"
}

setup() {
    R=$BATS_TEST_TMPDIR/tree
    mkdir -p "$R/docs"
    # (The name in a variable, for the same reason as DOCS/ above.)
    local guide=guide.md
    cat >"$R/docs/$guide" <<'MD'
# Guide

## Exact rules (what the writer does)

```
# not a heading: inside a fence
```

## Frames
## Frames
MD
}

@test "citations of existing files and headings pass" {
    put lib/a.c <<'C'
/* See DOCS/guide.md, DOCS/guide.md#guide and
 * DOCS/guide.md#exact-rules-what-the-writer-does. */
C
    echo '# DOCS/guide.md#frames and DOCS/guide.md#frames-1' | put scripts/s
    echo 'x = "DOCS/guide.md#frames"' | put bench/b.py
    run --separate-stderr "$CHECK" "$R"
    assert_success
    assert_output ''
}

@test "a missing file, a missing heading and a fenced one fail with PATH:LINE" {
    printf 'one\n/* DOCS/nothere.md */\n' | put cmd/x/main.c
    echo '# DOCS/guide.md#frames-2' | put tests/t.bats
    echo '-- DOCS/guide.md#not-a-heading-inside-a-fence' | put bench/b.sh
    run --separate-stderr "$CHECK" "$R"
    assert_failure 1
    want <<'OUT'
cmd/x/main.c:2: DOCS/nothere.md does not exist
tests/t.bats:1: DOCS/guide.md has no heading #frames-2
bench/b.sh:1: DOCS/guide.md has no heading #not-a-heading-inside-a-fence
OUT
}

@test "the research notes that are not in the repository fail wherever named" {
    echo '/* WF section 8 */' | put lib/w.h
    printf '# DOCS/WF#frames\n# IS 1.8\n' | put scripts/run
    run --separate-stderr "$CHECK" "$R"
    assert_failure 1
    want <<'OUT'
lib/w.h:1: cites WF, which is not in this repository
scripts/run:1: cites WF, which is not in this repository
scripts/run:2: cites IS, which is not in this repository
OUT
}

@test "files outside lib/ cmd/ tests/ bench/ scripts/ and binary files are not read" {
    echo '/* DOCS/nothere.md */' | put other/o.c
    printf '\xff\xfe DOCS/nothere.md\n' | put tests/blob.bin
    run --separate-stderr "$CHECK" "$R"
    assert_success
    assert_output ''
}
