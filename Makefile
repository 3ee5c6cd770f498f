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
CORE_SRC := $(UTIL_SRC) $(FORMAT_SRC) $(wildcard src/analysis/*.c) \
            $(wildcard src/render/*.c) \
            $(filter-out src/cli/main.c,$(wildcard src/cli/*.c))
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/obj/%.o)
HEADERS := $(wildcard src/*/*.h)

# Interpreters for the version matrix; absent ones are skipped.
PYENV_ROOT ?= $(HOME)/.pyenv
MATRIX := $(wildcard $(foreach v,9 10 11 12 13,\
            $(PYENV_ROOT)/versions/3.$(v).*/bin/python3)) \
          $(wildcard /usr/bin/python3)

PY_EXT = $(shell $(PYTHON) -c 'import sysconfig as s; print(s.get_config_var("EXT_SUFFIX"))')
PY_INC = $(shell $(PYTHON) -c 'import sysconfig as s; print(s.get_paths()["include"])')
PY_FILES := $(wildcard python/memhound/*.py python/bootstrap/*.py)

.PHONY: all agent agents python test test-c test-py bench demo install \
        clean fuzz fuzz-heap asan format format-check

all: $(BUILD)/memhound agent

$(BUILD)/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(CFLAGS) -c $< -o $@

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
	    -I"$$inc" $(AGENT_SRC) $(UTIL_SRC) $(FORMAT_SRC) -o "$$out.tmp" $(LIBS) || exit 1; \
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
$(BUILD)/ctest: $(TEST_SRC) $(wildcard tests/c/*.h) $(BUILD)/libmh.a
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
HEAP_AN_SRC := $(wildcard src/analysis/heap_*.c)
fuzz-heap:
	@mkdir -p $(BUILD)/fuzz/corpus-heap
	clang -g -O1 -fsanitize=fuzzer,address,undefined $(WARN) -Wno-error \
	  fuzz/fuzz_heap.c fuzz/fuzz_common.c $(UTIL_SRC) $(FORMAT_SRC) $(HEAP_AN_SRC) -o $(BUILD)/fuzz/fuzz_heap $(LIBS)
	$(BUILD)/fuzz/fuzz_heap -max_total_time=$(FUZZ_SECONDS) $(BUILD)/fuzz/corpus-heap tests/data

format:
	clang-format -i $(wildcard src/*/*.c src/*/*.h tests/c/*.c tests/c/*.h fuzz/*.c)

clean:
	rm -rf $(BUILD) build-asan
