# kvtap - small Unix tools for LLM engines' KV-cache event streams.
#
#   make                 build every tool into bin/
#   make test            unit + CLI tests; ends with "N passed, N failed"
#                        (KVTAP_TEST_JOBS=N files at once, default 3;
#                        and the citation lint, scripts/check-docs)
#   make fuzz-build      compile the libFuzzer harnesses (needs clang)
#   make fuzz FUZZ_SECONDS=60   run each harness that long (corpus: tests/fuzz)
#   make demo            the whole pipeline on a simulated engine
#   make demo-cluster    the same across a 3-server NATS JetStream cluster
#   make bench           benchmarks (ratios against baselines, same run)
#   make SANITIZE=address,undefined test
#   make san-check       clang ASan+UBSan build: unit tests + edge-case CLI
#   make tsan-check      clang TSan build: the kvindex input CLI files
#   make install PREFIX=/usr/local DESTDIR=
#   make format | format-check | lint | clean
#
# Dependencies come through pkg-config; `make test` and `make demo` run
# scripts/bootstrap first, which installs them when something is missing.

VERSION  := 0.1.0
PREFIX   ?= /usr/local
DESTDIR  ?=
CC       ?= cc

MSGPACK  := $(shell pkg-config --exists msgpack-c 2>/dev/null && echo msgpack-c || echo msgpack)
PKGS     := libzmq $(MSGPACK) jansson libxxhash
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

comma    := ,
ifdef SANITIZE
# The compiler is part of the directory: gcc's and clang's sanitizer builds
# check different things (gcc's "undefined" leaves float-cast-overflow out),
# so both are kept and neither overwrites the other.
BUILD    := build/san-$(notdir $(firstword $(CC)))-$(subst $(comma),-,$(SANITIZE))
BIN      := $(BUILD)/bin
OPT      := -O1 -g -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
SANLD    := -fsanitize=$(SANITIZE)
else
BUILD    := build/default
BIN      := bin
OPT      := -O2 -g
SANLD    :=
endif

WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wformat=2 \
            -Wmissing-prototypes -Wno-unused-parameter
ifeq ($(WERROR),1)
WARN     += -Werror
endif

CPPFLAGS += -Ilib -Icmd/common -DKVTAP_VERSION='"$(VERSION)"' \
            -D_GNU_SOURCE
CFLAGS   ?= $(OPT)
ALL_CFLAGS = -std=c11 $(CFLAGS) $(WARN) $(PKG_CFLAGS) -MMD -MP
LDLIBS   += $(PKG_LIBS) -lm
ALL_LDFLAGS = $(LDFLAGS) $(SANLD)

LIB_SRC    := $(wildcard lib/*.c)
COMMON_SRC := $(wildcard cmd/common/*.c)
TOOLS      := $(patsubst cmd/%/main.c,%,$(wildcard cmd/*/main.c))
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_HELP  := $(filter-out $(UNIT_SRC),$(wildcard tests/unit/*.c))
BENCH_SRC  := $(wildcard bench/*.c)

LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/%.o)
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o)
LIBA       := $(BUILD)/libkvtap.a
TOOL_BINS  := $(TOOLS:%=$(BIN)/%)
UNIT_BINS  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
UNIT_HOBJ  := $(UNIT_HELP:%.c=$(BUILD)/%.o)
BENCH_BINS := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all tools tests deps test unit cli demo demo-cluster bench install \
        uninstall format format-check lint clean fuzz fuzz-build fuzz-merge check-docs \
        san-check tsan-check

all: tools tests

tools: $(TOOL_BINS)
tests: $(UNIT_BINS) $(BENCH_BINS)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

$(LIBA): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

# Each tool is every .c file under cmd/NAME/ plus the shared parts.
.SECONDARY:
.SECONDEXPANSION:
$(BIN)/%: $$(addprefix $(BUILD)/,$$(subst .c,.o,$$(wildcard cmd/$$*/*.c))) $(COMMON_OBJ) $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

# kvindex serve reads its input on a thread (docs/kvindex.md#reading-the-input).
$(BIN)/kvindex: LDLIBS += -pthread
$(BUILD)/cmd/kvindex/%.o: CFLAGS += -pthread

# kvjs is the only tool that links libnats (docs/cluster.md).
$(BIN)/kvjs: LDLIBS += $(shell pkg-config --libs libnats 2>/dev/null)
$(BUILD)/cmd/kvjs/%.o: CPPFLAGS += $(shell pkg-config --cflags libnats 2>/dev/null)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(UNIT_HOBJ) $(COMMON_OBJ) $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(COMMON_OBJ) $(LIBA)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

# Installs what the build and the tests need when something is missing;
# quiet when everything is there.
deps:
	@scripts/bootstrap

# The one test command (README, .ci/run): unit tests, golden tests and the
# CLI tests against real sockets, counted together.
test: deps
	@$(MAKE) --no-print-directory all
	@KVTAP_BIN=$(abspath $(BIN)) KVTAP_BUILD=$(abspath $(BUILD)) scripts/run-tests

unit: deps
	@$(MAKE) --no-print-directory all
	@KVTAP_BIN=$(abspath $(BIN)) KVTAP_BUILD=$(abspath $(BUILD)) scripts/run-tests --unit

cli: deps
	@$(MAKE) --no-print-directory all
	@KVTAP_BIN=$(abspath $(BIN)) KVTAP_BUILD=$(abspath $(BUILD)) scripts/run-tests --cli

demo: deps
	@$(MAKE) --no-print-directory tools
	@KVTAP_BIN=$(abspath $(BIN)) scripts/demo

# Three pods, three relays, a three-server NATS cluster, two index
# replicas (docs/cluster.md).
demo-cluster: deps
	@$(MAKE) --no-print-directory tools
	@KVTAP_BIN=$(abspath $(BIN)) scripts/demo-cluster

bench: deps
	@$(MAKE) --no-print-directory all
	@KVTAP_BIN=$(abspath $(BIN)) KVTAP_BUILD=$(abspath $(BUILD)) bench/run

install: tools
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0755 $(TOOL_BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(wildcard man/*.1) $(DESTDIR)$(PREFIX)/share/man/man1/

uninstall:
	rm -f $(TOOLS:%=$(DESTDIR)$(PREFIX)/bin/%) \
	      $(patsubst man/%,$(DESTDIR)$(PREFIX)/share/man/man1/%,$(wildcard man/*.1))

FORMAT_SRC = $(wildcard lib/*.[ch] cmd/*/*.[ch] tests/unit/*.[ch] bench/*.[ch] bench/ab-src/*.c tests/fuzz/*.c)

format:
	clang-format -i $(FORMAT_SRC)

format-check:
	clang-format --dry-run --Werror $(FORMAT_SRC)

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
	    --inline-suppr -Ilib -Icmd/common $(LIB_SRC) $(COMMON_SRC) cmd/*/*.c

# libFuzzer harnesses (need clang): every tests/fuzz/fuzz_NAME.c is built
# against all of lib/, so a new harness or a new lib file needs no edit
# here.  `make fuzz-build` only compiles and links them.  `make fuzz` runs
# each for FUZZ_SECONDS (CI: 45), one after the other.  Each starts from
# the corpus kept in the repository, tests/fuzz/corpus/NAME, plus the golden
# fixtures, and writes what it finds to build/fuzz/corpus/NAME; `make
# fuzz-merge` folds those finds back into tests/fuzz/corpus (the smallest
# set that covers the same code), to be committed after a long run.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_FLAGS   := -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS    := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)

build/fuzz/%: tests/fuzz/%.c $(LIB_SRC) $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_FLAGS) $(PKG_CFLAGS) -o $@ $< $(LIB_SRC) \
	    $(PKG_LIBS) -lm

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	@rc=0; for f in $(FUZZ_BINS); do \
	    n=$${f##*/}; c=build/fuzz/corpus/$$n; mkdir -p $$c tests/fuzz/corpus/$$n; \
	    echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        -artifact_prefix=build/fuzz/$$n- $$c tests/fuzz/corpus/$$n \
	        tests/data/fixtures || \
	        { echo "fuzz: $$n found a crash (build/fuzz/$$n-*)"; rc=1; }; \
	done; exit $$rc

fuzz-merge: fuzz-build
	@for f in $(FUZZ_BINS); do \
	    n=$${f##*/}; mkdir -p tests/fuzz/corpus/$$n build/fuzz/corpus/$$n; \
	    $$f -merge=1 tests/fuzz/corpus/$$n build/fuzz/corpus/$$n; \
	done

# The clang sanitizer build (ASan and UBSan; clang's UBSan checks the
# float-to-integer casts that gcc's leaves out) over every unit test and the
# CLI files of every tool: edge values, hostile input, every engine's
# layout, replay, recovery, the options, and kvjs against real nats-server
# clusters (where libnats 3.4's own bugs were met: docs/cluster.md).  CI
# runs it (.ci/run).  kvjs.bats, the slowest (two minutes), comes first so
# that the others run beside it.  The files that test the docs, the demo
# and the benchmarks rather than the tools are left out.
SAN_DIR := build/san-clang-address-undefined
SAN_CLI ?= tests/cli/kvjs.bats \
           tests/cli/extremes.bats tests/cli/kvindex.bats tests/cli/peer.bats \
           tests/cli/kvsub.bats tests/cli/kvsub_hostile.bats \
           tests/cli/kvsub_join.bats tests/cli/kvsub_diag.bats \
           tests/cli/kvpub.bats tests/cli/kvreplay.bats \
           tests/cli/producers.bats tests/cli/kvstat.bats \
           tests/cli/kvindex_files.bats tests/cli/kvindex_health.bats \
           tests/cli/kvindex_hostile.bats tests/cli/kvindex_reader.bats \
           tests/cli/kvindex_recover.bats tests/cli/curve.bats \
           tests/cli/options.bats
san-check: deps
	@$(MAKE) --no-print-directory CC=clang SANITIZE=address,undefined all
	@KVTAP_BIN=$(abspath $(SAN_DIR))/bin KVTAP_BUILD=$(abspath $(SAN_DIR)) \
	    scripts/run-tests $(SAN_DIR)/tests/test_* $(SAN_CLI)

# clang's ThreadSanitizer build over the CLI files that feed kvindex serve's
# input, with its reader thread forced on (docs/kvindex.md#reading-the-input)
# so that a one-CPU machine runs that path too; a race fails the test that
# met it.  kvindex_hostile.bats's fair-share test asks only for progress
# under TSan, whose 5 to 15 times slower parse moves the shares; in
# kvindex_recover.bats the tests whose waits and memory bound do not hold
# under TSan skip themselves (KVTAP_SANITIZE=thread, skip_under_tsan).
# CI runs it (.ci/run).
TSAN_DIR := build/san-clang-thread
TSAN_CLI ?= tests/cli/kvindex.bats tests/cli/kvindex_reader.bats \
            tests/cli/kvindex_files.bats tests/cli/kvindex_health.bats \
            tests/cli/kvindex_recover.bats tests/cli/kvindex_hostile.bats
tsan-check: deps
	@$(MAKE) --no-print-directory CC=clang SANITIZE=thread all
	@KVTAP_SANITIZE=thread KVINDEX_READER_THREAD=on \
	    TSAN_OPTIONS="halt_on_error=1 exitcode=66" \
	    KVTAP_BIN=$(abspath $(TSAN_DIR))/bin KVTAP_BUILD=$(abspath $(TSAN_DIR)) \
	    scripts/run-tests $(TSAN_CLI)

# Every docs/ citation in lib/ cmd/ tests/ bench/ scripts/ must name a file
# and heading that exist.  `make test` counts it as one more test
# (KVTAP_CHECK_DOCS=0 leaves it out).
check-docs:
	@scripts/check-docs

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
