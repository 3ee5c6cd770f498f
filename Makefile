# memhound: `make` builds the CLI (build/memhound) and the agent extension
# for $(PYTHON); `make agents` builds the agent for every interpreter found
# (/usr/bin/python3 and pyenv's 3.9-3.13); `make test` runs everything.

PYTHON ?= python3
CC ?= gcc
PREFIX ?= /usr/local
OPT ?= -O2
CFLAGS ?= $(OPT) -g
WARN := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
        -Wstrict-prototypes -Wmissing-prototypes -Wno-missing-field-initializers
LIBS := -lzstd -lz -lm -lpthread
BUILD := build

UTIL_SRC := $(wildcard src/util/*.c)
FORMAT_SRC := $(wildcard src/format/*.c)
AGENT_SRC := $(wildcard src/agent/*.c)
CORE_SRC := $(UTIL_SRC) $(FORMAT_SRC) $(wildcard src/analysis/*.c src/analysis/*/*.c) \
            $(wildcard src/render/*.c) \
            $(filter-out src/cli/main.c,$(wildcard src/cli/*.c)) \
            $(wildcard src/cli/guard/*.c)
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/obj/%.o)
HEADERS := $(wildcard src/*/*.h src/*/*/*.h)
# What the agent links: the writers, never the readers (capture_read,
# heap_read); --gc-sections drops the util functions it does not call
# (the /proc readers for other processes). `make agent-check` verifies.
AGENT_LINK_SRC := $(AGENT_SRC) $(UTIL_SRC) \
                  $(filter-out %_read.c,$(FORMAT_SRC))

# Interpreters for the version matrix; absent ones are skipped.
PYENV_ROOT ?= $(HOME)/.pyenv
MATRIX := $(wildcard $(foreach v,9 10 11 12 13,\
            $(PYENV_ROOT)/versions/3.$(v).*/bin/python3)) \
          $(wildcard /usr/bin/python3)

PY_EXT = $(shell $(PYTHON) -c 'import sysconfig as s; print(s.get_config_var("EXT_SUFFIX"))')
PY_INC = $(shell $(PYTHON) -c 'import sysconfig as s; print(s.get_paths()["include"])')
PY_FILES := $(wildcard python/memhound/*.py python/bootstrap/*.py)

.PHONY: all agent agents python test test-c test-py bench demo install \
        clean fuzz fuzz-heap asan format format-check header-check \
        agent-check include-check check-static

all: $(BUILD)/memhound agent

# -MMD -MP: each object's .d file names the headers it includes, so
# touching a header rebuilds only the objects that include it.
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -MMD -MP -c $< -o $@

-include $(CORE_OBJ:.o=.d) $(BUILD)/obj/src/cli/main.d

$(BUILD)/libmh.a: $(CORE_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/memhound: $(BUILD)/obj/src/cli/main.o $(BUILD)/libmh.a
	$(CC) $(CFLAGS) $^ -o $@ $(LIBS)

# The agent is one shared object per interpreter, compiled in one go
# (it is small); versioned names let them sit side by side. It is replaced
# by rename, so a running target never maps a half-written file; .pyc
# files are compiled for each interpreter so the bootstrap imports fast.
agent: python
	@ext='$(PY_EXT)'; inc='$(PY_INC)'; \
	test -n "$$ext" || { echo "memhound: cannot query '$(PYTHON)'" >&2; exit 1; }; \
	out=$(BUILD)/python/memhound/_memhound$$ext; \
	if [ ! -e "$$out" ] || [ -n "$$(find $(AGENT_SRC) $(UTIL_SRC) $(FORMAT_SRC) $(HEADERS) -newer $$out 2>/dev/null | head -1)" ]; then \
	  echo "  CC agent for $(PYTHON) -> $$out"; \
	  $(CC) $(WARN) $(CFLAGS) -fPIC -shared -fvisibility=hidden \
	    -ffunction-sections -fdata-sections -Wl,--gc-sections \
	    -I"$$inc" $(AGENT_LINK_SRC) -o "$$out.tmp" $(LIBS) || exit 1; \
	  mv -f "$$out.tmp" "$$out"; \
	fi; \
	$(PYTHON) -m compileall -q $(BUILD)/python >/dev/null || true

agents: python
	@for py in $(MATRIX); do $(MAKE) --no-print-directory agent PYTHON=$$py || exit 1; done

python: $(PY_FILES)
	@mkdir -p $(BUILD)/python/memhound $(BUILD)/python/bootstrap
	@cp python/memhound/*.py $(BUILD)/python/memhound/
	@if ls python/bootstrap/*.py >/dev/null 2>&1; then cp python/bootstrap/*.py $(BUILD)/python/bootstrap/; fi

TEST_SRC := $(wildcard tests/c/*.c)
# Built in one step from all its files, so any header is a prerequisite.
$(BUILD)/ctest: $(TEST_SRC) $(wildcard tests/c/*.h) $(HEADERS) $(BUILD)/libmh.a
	$(CC) $(WARN) $(CFLAGS) -Isrc $(TEST_SRC) $(BUILD)/libmh.a -o $@ $(LIBS)

test: test-c test-py

test-c: $(BUILD)/ctest
	$(BUILD)/ctest

test-py: $(BUILD)/memhound agents
	MEMHOUND_MATRIX="$(MATRIX)" /usr/bin/python3 -m pytest -q tests/py $(PYTEST_ARGS)

# run.py rewrites docs/performance.md; guard_bench.py then replaces only
# its own "## guard" section, so it runs second.
bench: $(BUILD)/memhound agents
	/usr/bin/python3 bench/run.py $(BENCH_ARGS)
	/usr/bin/python3 bench/guard_bench.py
	/usr/bin/python3 bench/heap_bench.py

demo: $(BUILD)/memhound agent
	$(BUILD)/memhound run --force -o $(BUILD)/demo.mhc -- $(PYTHON) examples/leaky_service.py
	$(BUILD)/memhound report $(BUILD)/demo.mhc

install: $(BUILD)/memhound agents
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/memhound/python
	install -m 755 $(BUILD)/memhound $(DESTDIR)$(PREFIX)/bin/memhound
	cp -r $(BUILD)/python/. $(DESTDIR)$(PREFIX)/lib/memhound/python/

# Sanitized CLI and C tests (ASan + UBSan), and the fuzz targets.
asan:
	$(MAKE) BUILD=build-asan CC=clang \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  LIBS="$(LIBS) -fsanitize=address,undefined" build-asan/memhound build-asan/ctest
	build-asan/ctest

FUZZ_SECONDS ?= 30
fuzz:
	@mkdir -p $(BUILD)/fuzz/corpus
	clang -g -O1 -fsanitize=fuzzer,address,undefined $(WARN) -Wno-error \
	  fuzz/fuzz_capture.c fuzz/fuzz_common.c $(UTIL_SRC) $(FORMAT_SRC) -o $(BUILD)/fuzz/fuzz_capture $(LIBS)
	# new inputs go to the first directory: keep them out of tests/data
	$(BUILD)/fuzz/fuzz_capture -max_total_time=$(FUZZ_SECONDS) $(BUILD)/fuzz/corpus tests/data
	$(MAKE) --no-print-directory fuzz-heap

# The heap dump reader and the analyses on what it accepts.
HEAP_AN_SRC := $(wildcard src/analysis/heap/*.c)
fuzz-heap:
	@mkdir -p $(BUILD)/fuzz/corpus-heap
	clang -g -O1 -fsanitize=fuzzer,address,undefined $(WARN) -Wno-error \
	  fuzz/fuzz_heap.c fuzz/fuzz_common.c $(UTIL_SRC) $(FORMAT_SRC) $(HEAP_AN_SRC) -o $(BUILD)/fuzz/fuzz_heap $(LIBS)
	$(BUILD)/fuzz/fuzz_heap -max_total_time=$(FUZZ_SECONDS) $(BUILD)/fuzz/corpus-heap tests/data

# .clang-format is the convention (style.md 14). Files listed in
# .ci/format-pending are not formatted yet (they were being edited when the
# check came in); format-check covers every other file, new ones included,
# and fails on a listed file that is formatted or gone (the list shrinks).
CLANG_FORMAT ?= clang-format-14
FORMAT_FILES := $(wildcard src/*/*.c src/*/*.h src/*/*/*.c src/*/*/*.h tests/c/*.c tests/c/*.h fuzz/*.c)
FORMAT_PENDING := $(shell sed 's/\#.*//' .ci/format-pending 2>/dev/null)
FORMAT_CHECKED := $(filter-out $(FORMAT_PENDING),$(FORMAT_FILES))
format:
	$(CLANG_FORMAT) -i $(FORMAT_CHECKED)

format-check:
	@$(CLANG_FORMAT) --dry-run --Werror $(FORMAT_CHECKED)
	@for f in $(FORMAT_PENDING); do \
	  if [ ! -e "$$f" ] || $(CLANG_FORMAT) --dry-run --Werror "$$f" 2>/dev/null; then \
	    echo "memhound: '$$f' is formatted or gone: delete it from .ci/format-pending" >&2; \
	    exit 1; \
	  fi; \
	done
	@echo "format-check: $(words $(FORMAT_CHECKED)) files formatted," \
	  "$(words $(FORMAT_PENDING)) pending (.ci/format-pending)"

# Every header compiles on its own: a TU that includes only it.
HEADER_CHECK_FLAGS = $(WARN) -fsyntax-only -I"$(PY_INC)" -Isrc
header-check:
	@fail=0; for h in $(HEADERS); do \
	  printf '#include "%s"\n' "$$PWD/$$h" | \
	    $(CC) $(HEADER_CHECK_FLAGS) -x c -c - -o /dev/null || \
	    { echo "memhound: header '$$h' does not compile on its own" >&2; fail=1; }; \
	done; exit $$fail

# The agent .so loaded into every target carries no reader symbol: none
# of the global symbols that the capture and heap readers and the /proc
# readers define, except reading the agent's own memory (smaps_rollup),
# which the control socket reports.
AGENT_MAY_USE := mh_proc_read_mem mh_proc_parse_smaps
READER_OBJ := $(BUILD)/obj/src/format/capture_read.o \
              $(BUILD)/obj/src/format/heap_read.o $(BUILD)/obj/src/util/proc.o
agent-check: agent $(READER_OBJ)
	@so=$(BUILD)/python/memhound/_memhound$(PY_EXT); \
	syms=$$(nm --defined-only -g $(READER_OBJ) | awk 'NF == 3 {print $$3}' | \
	  grep -vxF $(foreach s,$(AGENT_MAY_USE),-e $(s)) | sort -u); \
	test -n "$$syms" || { echo "memhound: no reader symbols found" >&2; exit 1; }; \
	bad=$$(nm "$$so" | awk 'NF == 3 {print $$3}' | grep -xF -e "$$syms"); \
	if [ -n "$$bad" ]; then \
	  echo "memhound: the agent '$$so' carries reader symbols:" $$bad >&2; exit 1; \
	fi; echo "agent-check: $$so has none of $$(echo "$$syms" | wc -l) reader symbols"

include-check:
	/usr/bin/python3 .ci/check-includes

# The static checks CI runs before the tests.
check-static: format-check header-check include-check agent-check

clean:
	rm -rf $(BUILD) build-asan
