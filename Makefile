# slm - build, test, benchmark.  `make help` lists the targets.

CC      ?= cc
OPT     ?= -O2
# Portable by default: x86-64 builds carry every x86 kernel set and pick one
# at run time (slm.c section 6h). NATIVE=1 compiles for this machine's CPU
# only (-march=native), as a fixed build.
NATIVE  ?= 0
ifeq ($(NATIVE),1)
  MARCH ?= -march=native
else
  MARCH ?=
endif
CSTD    ?= -std=c99
WARN    ?= -Wall -Wextra -Wshadow -Wstrict-prototypes
OPENMP  ?= 1
CFLAGS  ?=
LDFLAGS ?=

# OpenMP when the compiler has it (make OPENMP=0 builds without)
ifeq ($(OPENMP),1)
  OMP_OK := $(shell printf 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo 1)
  ifeq ($(OMP_OK),1)
    OMPFLAGS := -fopenmp
  endif
endif

ALL_CFLAGS = $(CSTD) $(OPT) $(MARCH) $(WARN) $(OMPFLAGS) $(CFLAGS)
LIBS       = -lm
TEST_LIBS  = -lpthread

VERSION  := $(shell sed -n 's/^\#define SLM_VERSION_STRING "\(.*\)"/\1/p' slm.h)
SOMAJOR  := $(word 1,$(subst ., ,$(VERSION)))

BUILD    ?= build
LIB_A    = $(BUILD)/libslm.a
LIB_SO   = $(BUILD)/libslm.so
LIB_SO_V = $(BUILD)/libslm.so.$(VERSION)
CLI      = $(BUILD)/slm
TESTBIN  = $(BUILD)/run_tests
RAG      = $(BUILD)/rag

TEST_SRC = tests/test_main.c tests/util.c tests/test_gguf.c tests/test_models.c tests/test_kernels.c \
           tests/test_robust.c tests/gguf_build.c tests/test_tokenizer.c tests/test_sampler.c tests/test_generate.c \
           tests/test_quant.c tests/vocab_build.c tests/test_chat.c tests/test_embed.c tests/test_files.c \
           tests/test_safety.c tests/test_cli.c tests/test_state.c tests/test_grammar.c \
           tests/test_embedding.c tests/test_families.c tests/test_vocab_views.c tests/test_pretok.c \
           tests/test_chat_think.c tests/test_gemm_models.c tests/test_book.c
# included by test_kernels.c (they reach slm.c's statics): dependencies only
TEST_INCLUDED = tests/test_kernels_avx512.c tests/test_kernels_gemm.c tests/test_kernels_kx8.c \
                tests/test_kernels_kgemm.c tests/test_attention.c tests/test_scan.c tests/test_repack.c

.PHONY: all lib cli test run embedded test-embedded test-sanitize test-tsan fuzz fuzz-seeds test-fuzz bench-models bench-compare bench-dispatch bench-grammar bench-vocab \
        bench-gemm test-cross print-test-src bench clean help \
        pretok-check pretok-vectors unicode-tables test-python test-node check-exports install uninstall test-install windows test-windows \
        test-cmake test-serve test-serve-sanitize test-hello docs-check \
        bench-bandwidth bench-attention bench-scan

# The built-in demo: a 1M-parameter llama model trained on the King James Bible
# (tests/data/demo/README.md). One thread: the model is too small to share.
DEMO_MODEL  ?= tests/data/demo/kjv-1m-q8_0.gguf
DEMO_PROMPT ?= And the LORD said
DEMO_ARGS   ?= -n 128 --seed 42 -t 1

all: $(LIB_A) $(LIB_SO) $(CLI) $(RAG)

$(BUILD):
	mkdir -p $(BUILD)

$(BUILD)/slm.o: slm.c slm.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -c slm.c -o $@

$(BUILD)/slm.pic.o: slm.c slm.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -c slm.c -o $@

$(LIB_A): $(BUILD)/slm.o
	rm -f $@ && ar rcs $@ $<

# libslm.so -> libslm.so.MAJOR (the soname) -> libslm.so.MAJOR.MINOR.PATCH.
# -z nodelete: an FFI that unloads the library (dlclose) must not leave
# OpenMP's idle worker threads running code that is gone.
$(LIB_SO_V): $(BUILD)/slm.pic.o
	$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,libslm.so.$(SOMAJOR) -Wl,-z,nodelete $< -o $@ $(LDFLAGS) $(LIBS)

$(LIB_SO): $(LIB_SO_V)
	ln -sf libslm.so.$(VERSION) $(BUILD)/libslm.so.$(SOMAJOR)
	ln -sf libslm.so.$(SOMAJOR) $@

# `slm serve` (examples/serve: HTTP, JSON, the server) is part of the CLI;
# it needs POSIX threads (on Windows the command says it is unsupported).
SERVE_SRC = examples/serve/serve.c examples/serve/http.c examples/serve/json.c
SERVE_DEPS = $(SERVE_SRC) examples/serve/serve.h examples/serve/http.h examples/serve/json.h examples/serve/think.h

$(CLI): examples/slm.c $(SERVE_DEPS) $(LIB_A)
	$(CC) $(ALL_CFLAGS) -I. examples/slm.c $(SERVE_SRC) $(LIB_A) -o $@ $(LDFLAGS) $(LIBS) -lpthread

# The RAG example (examples/rag/README.md)
$(RAG): examples/rag/rag.c $(LIB_A)
	$(CC) $(ALL_CFLAGS) -I. examples/rag/rag.c $(LIB_A) -o $@ $(LDFLAGS) $(LIBS)

# The test runner includes slm.c itself (to reach the static kernels).
$(TESTBIN): $(TEST_SRC) $(TEST_INCLUDED) tests/test.h tests/gguf_build.h tests/vocab_build.h slm.c slm.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -Wno-unused-function -I. $(TEST_SRC) -o $@ $(LDFLAGS) $(LIBS) $(TEST_LIBS)

test: all check-exports docs-check test-hello $(TESTBIN) test-python test-serve
	./$(TESTBIN)

# The README's example (examples/hello.c, also at the top of slm.h): built
# warning-free, and its text must be slm run's for the same prompt and seed.
$(BUILD)/hello: examples/hello.c slm.h $(LIB_A)
	$(CC) $(ALL_CFLAGS) -Werror -I. examples/hello.c $(LIB_A) -o $@ $(LDFLAGS) $(LIBS)

test-hello: $(BUILD)/hello $(CLI)
	@./$(BUILD)/hello $(DEMO_MODEL) > $(BUILD)/hello.out
	@./$(CLI) run -m $(DEMO_MODEL) -p "And the LORD said" -n 48 --seed 42 2>/dev/null > $(BUILD)/hello.ref
	@{ printf 'And the LORD said'; sed '$$d' $(BUILD)/hello.out; } | cmp -s - $(BUILD)/hello.ref \
	  && echo "hello: examples/hello.c writes what slm run writes" \
	  || { echo "hello: FAIL: build/hello's text differs from slm run's (see $(BUILD)/hello.out, $(BUILD)/hello.ref)"; exit 1; }

# Links in the Markdown files, the README's example and test commands
# (tools/check_docs.py; skipped without python3, like test-python).
docs-check:
	@if command -v $(PYTHON) >/dev/null 2>&1; then \
	  $(PYTHON) tools/check_docs.py; \
	else \
	  echo "docs: $(PYTHON) not found: the docs check is skipped (install python3 to run it)"; \
	fi

# The language bindings (examples/python, examples/node) against the shared
# library. `make test` runs the Python tests first (they print their own
# "python: N passed, N failed" line and stop make on a failure), then the C
# suite, whose line stays the last.
PYTHON ?= python3
test-python: $(LIB_SO)
	@if command -v $(PYTHON) >/dev/null 2>&1; then \
	  SLM_LIBRARY=$(abspath $(LIB_SO)) $(PYTHON) examples/python/tests/run.py; \
	else \
	  echo "python: $(PYTHON) not found: the Python binding's tests are skipped (install python3 to run them)"; \
	fi

# `slm serve` against the official openai and ollama npm clients (installed
# into tests/serve/node_modules, versions pinned by package-lock.json), curl
# and raw sockets: prints "serve: N passed, N failed" (part of make test),
# after the unit test of the thinking splitter ("think: N passed, N failed").
test-serve: $(CLI) $(BUILD)/test_think
	./$(BUILD)/test_think
	cd tests/serve && $(NPM) ci --ignore-scripts --no-audit --no-fund --loglevel=error
	SLM_CLI=$(abspath $(CLI)) node tests/serve/test.mjs

# the thinking splitter of slm serve (examples/serve/think.h), tags cut at every position
$(BUILD)/test_think: tests/serve/test_think.c examples/serve/think.h | $(BUILD)
	$(CC) $(CSTD) -O1 $(WARN) -Werror tests/serve/test_think.c -o $@

# The same with the server built with ASan+UBSan (leak checking at its exit),
# then with TSan (no OpenMP: libgomp is not instrumented).
test-serve-sanitize: $(SERVE_DEPS) examples/slm.c slm.c slm.h
	mkdir -p $(BUILD)/san $(BUILD)/tsan
	$(CC) $(CSTD) -O1 $(WARN) $(SAN_FLAGS) tests/serve/test_think.c -o $(BUILD)/san/test_think && ./$(BUILD)/san/test_think
	$(CC) $(CSTD) -O1 $(MARCH) $(WARN) $(SAN_FLAGS) -I. examples/slm.c $(SERVE_SRC) slm.c -o $(BUILD)/san/slm $(LIBS) -lpthread
	$(CC) $(CSTD) -O1 $(MARCH) $(WARN) -fsanitize=thread -g -I. examples/slm.c $(SERVE_SRC) slm.c -o $(BUILD)/tsan/slm $(LIBS) -lpthread
	cd tests/serve && $(NPM) ci --ignore-scripts --no-audit --no-fund --loglevel=error
	SERVE_TEST_TIMEOUT=300 ASAN_OPTIONS=detect_leaks=1 SLM_CLI=$(abspath $(BUILD)/san/slm) node tests/serve/test.mjs
	SERVE_TEST_TIMEOUT=400 TSAN_OPTIONS=exitcode=66 SLM_CLI=$(abspath $(BUILD)/tsan/slm) node tests/serve/test.mjs

# Node.js through koffi (installed from the npm registry into
# examples/node/node_modules, the version pinned by package-lock.json).
NPM ?= npm
test-node: $(LIB_SO)
	cd examples/node && $(NPM) ci --ignore-scripts --no-audit --no-fund --loglevel=error
	SLM_LIBRARY=$(abspath $(LIB_SO)) node examples/node/test.js
	SLM_LIBRARY=$(abspath $(LIB_SO)) node examples/node/test_async.js

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer (with
# leak checking), -O1 for usable reports.
SAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g
$(BUILD)/san/run_tests: $(TEST_SRC) $(TEST_INCLUDED) tests/test.h tests/gguf_build.h tests/vocab_build.h slm.c slm.h
	mkdir -p $(BUILD)/san
	$(CC) $(CSTD) -O1 $(MARCH) $(WARN) $(OMPFLAGS) $(CFLAGS) $(SAN_FLAGS) -Wno-unused-function -I. $(TEST_SRC) -o $@ $(LDFLAGS) $(LIBS) $(TEST_LIBS)

test-sanitize: $(BUILD)/san/run_tests
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 ./$(BUILD)/san/run_tests

# ThreadSanitizer over the concurrency tests (sessions of one model decoding
# at the same time from several threads). Built without OpenMP: libgomp is
# not instrumented, so TSan would report its internal synchronisation.
$(BUILD)/tsan/run_tests: $(TEST_SRC) $(TEST_INCLUDED) tests/test.h tests/gguf_build.h tests/vocab_build.h slm.c slm.h
	mkdir -p $(BUILD)/tsan
	$(CC) $(CSTD) -O1 $(MARCH) $(WARN) $(CFLAGS) -fsanitize=thread -g -Wno-unused-function -I. $(TEST_SRC) -o $@ $(LDFLAGS) $(LIBS) $(TEST_LIBS) -lpthread

test-tsan: $(BUILD)/tsan/run_tests
	TSAN_OPTIONS=halt_on_error=1 ./$(BUILD)/tsan/run_tests robust

# Fuzzing. `make fuzz` builds the libFuzzer targets (clang); `make test-fuzz`
# replays the corpus (fuzz/corpus/ plus the test models) under the
# sanitizers with the plain compiler, as CI does.
FUZZ_CC ?= clang
$(BUILD)/fuzz/fuzz_gguf: fuzz/fuzz_gguf.c slm.c slm.h
	mkdir -p $(BUILD)/fuzz
	$(FUZZ_CC) -std=c99 -O1 -g -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_gguf.c slm.c -o $@ -lm

$(BUILD)/fuzz/fuzz_text: fuzz/fuzz_text.c slm.c slm.h
	mkdir -p $(BUILD)/fuzz
	$(FUZZ_CC) -std=c99 -O1 -g -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_text.c slm.c -o $@ -lm

# slm serve's parsers (examples/serve): HTTP request heads and JSON
$(BUILD)/fuzz/fuzz_http: fuzz/fuzz_http.c examples/serve/http.c examples/serve/http.h
	mkdir -p $(BUILD)/fuzz
	$(FUZZ_CC) -std=c99 -O1 -g -fsanitize=fuzzer,address,undefined fuzz/fuzz_http.c examples/serve/http.c -o $@

$(BUILD)/fuzz/fuzz_json: fuzz/fuzz_json.c examples/serve/json.c examples/serve/json.h
	mkdir -p $(BUILD)/fuzz
	$(FUZZ_CC) -std=c99 -O1 -g -fsanitize=fuzzer,address,undefined fuzz/fuzz_json.c examples/serve/json.c -o $@ -lm

$(BUILD)/fuzz/replay_http: fuzz/fuzz_http.c fuzz/replay_main.h examples/serve/http.c examples/serve/http.h
	mkdir -p $(BUILD)/fuzz
	$(CC) $(CSTD) -O1 $(MARCH) $(WARN) $(SAN_FLAGS) -DSLM_FUZZ_MAIN -D_DEFAULT_SOURCE fuzz/fuzz_http.c examples/serve/http.c -o $@

$(BUILD)/fuzz/replay_json: fuzz/fuzz_json.c fuzz/replay_main.h examples/serve/json.c examples/serve/json.h
	mkdir -p $(BUILD)/fuzz
	$(CC) $(CSTD) -O1 $(MARCH) $(WARN) $(SAN_FLAGS) -DSLM_FUZZ_MAIN -D_DEFAULT_SOURCE fuzz/fuzz_json.c examples/serve/json.c -o $@ -lm

$(BUILD)/fuzz/replay_%: fuzz/fuzz_%.c fuzz/replay_main.h slm.c slm.h
	mkdir -p $(BUILD)/fuzz
	$(CC) $(CSTD) -O1 $(MARCH) $(WARN) $(SAN_FLAGS) -DSLM_FUZZ_MAIN -D_DEFAULT_SOURCE -I. $< slm.c -o $@ -lm

$(BUILD)/fuzz/make_seeds: fuzz/make_seeds.c tests/gguf_build.c tests/util.c tests/gguf_build.h
	mkdir -p $(BUILD)/fuzz
	$(CC) $(CSTD) -O1 $(WARN) -I. fuzz/make_seeds.c tests/gguf_build.c tests/util.c -o $@

$(BUILD)/fuzz/fuzz_grammar: fuzz/fuzz_grammar.c slm.c slm.h
	mkdir -p $(BUILD)/fuzz
	$(FUZZ_CC) -std=c99 -O1 -g -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_grammar.c slm.c -o $@ -lm

fuzz: $(BUILD)/fuzz/fuzz_gguf $(BUILD)/fuzz/fuzz_text $(BUILD)/fuzz/fuzz_grammar $(BUILD)/fuzz/fuzz_http $(BUILD)/fuzz/fuzz_json

fuzz-seeds: $(BUILD)/fuzz/make_seeds
	mkdir -p fuzz/corpus/gguf
	./$(BUILD)/fuzz/make_seeds fuzz/corpus/gguf

test-fuzz: $(BUILD)/fuzz/replay_gguf $(BUILD)/fuzz/replay_text $(BUILD)/fuzz/replay_grammar $(BUILD)/fuzz/replay_http $(BUILD)/fuzz/replay_json
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 ./$(BUILD)/fuzz/replay_gguf fuzz/corpus/gguf tests/data/models tests/data/tokenizer tests/data/demo tests/data/embeddings
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 ./$(BUILD)/fuzz/replay_text fuzz/corpus/text
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 ./$(BUILD)/fuzz/replay_grammar fuzz/corpus/grammar
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 ./$(BUILD)/fuzz/replay_http fuzz/corpus/http
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 ./$(BUILD)/fuzz/replay_json fuzz/corpus/json

# Development checks of the tokenizer: slm's pre-tokenizers against the
# regular expressions they implement (needs Python with the `regex` module),
# and regeneration of the Unicode tables in slm.c.
$(BUILD)/pretok_dump: tools/pretok_dump.c slm.c slm.h | $(BUILD)
	$(CC) $(CSTD) -O1 $(WARN) -Wno-unused-function -I. tools/pretok_dump.c -o $@ $(LIBS)

# Differential run of every pre-tokenizer against a llama.cpp build (LLAMA=its
# source tree with build/bin/libllama): make pretok-vectors [N=1000]
LLAMA ?= ../peers/llama.cpp
pretok-vectors: | $(BUILD)
	$(CC) -O1 -DUSE_LLAMA -I$(LLAMA)/include -I$(LLAMA)/ggml/include tools/tok_oracle.c -L$(LLAMA)/build/bin -lllama \
		-Wl,-rpath,$(abspath $(LLAMA))/build/bin -o $(BUILD)/tok_llama
	$(CC) $(CSTD) -O2 -I. tools/tok_oracle.c slm.c -o $(BUILD)/tok_slm $(LIBS)
	python3 tools/pretok_vectors.py diff $(or $(N),1000)

pretok-check: $(BUILD)/pretok_dump
	python3 tools/pretok_check.py

unicode-tables:
	python3 tools/gen_unicode.py --write

run: all
	./$(CLI) run -m $(DEMO_MODEL) -p "$(DEMO_PROMPT)" $(DEMO_ARGS)

# Benchmark models: random weights with the shapes of SmolLM2-135M,
# Qwen2.5-0.5B and Llama-3.2-1B, generated into $(BENCH_DIR), never committed.
BENCH_DIR ?= $(BUILD)/bench-models
$(BUILD)/gen_model: bench/gen_model.c tests/gguf_build.c tests/util.c tests/gguf_build.h $(LIB_A)
	$(CC) $(ALL_CFLAGS) -I. bench/gen_model.c tests/gguf_build.c tests/util.c $(LIB_A) -o $@ $(LDFLAGS) $(LIBS)

bench-models: $(BUILD)/gen_model
	mkdir -p $(BENCH_DIR)
	./$(BUILD)/gen_model smollm2-135m $(BENCH_DIR)
	./$(BUILD)/gen_model qwen2.5-0.5b $(BENCH_DIR)
	./$(BUILD)/gen_model bge-small $(BENCH_DIR) F16,Q8_0,Q4_0

# The portable build (no -march, no OpenMP, runtime dispatch) against the
# -march=native one, alternating; THREADS=2 builds both with OpenMP.
bench-dispatch: bench-models
	BENCH_DIR=$(BENCH_DIR) bench/dispatch.sh

# slm against native llama.cpp and ik_llama.cpp (LLAMA_BENCH=/path/llama-bench,
# IK_BENCH=/path/llama-bench; binaries you built, see bench/README.md) and
# optionally node-llama-cpp (NODE=1), same files, alternating runs.
bench-compare:
	BUILD=$(BUILD) bash bench/compare.sh

# The embedded example (examples/embedded): the demo model as a const array
# (tools/gguf2c), the library built with the embedded switches, bare metal on
# a Cortex-M55 (QEMU mps3-an547) and a Cortex-M4F (mps2-an386) with
# semihosting output, and natively with the same switches and the scalar
# kernels as the reference. `make test-embedded` runs all three and checks
# that they generate the same text (needs gcc-arm-none-eabi,
# libnewlib-arm-none-eabi, qemu-system-arm).
EMB_DIR    = $(BUILD)/embedded
EMB_MODEL ?= tests/data/demo/kjv-1m-q4_0.gguf
EMB_CTX   ?= 256
EMB_BATCH ?= 8
ARM_CC    ?= arm-none-eabi-gcc
EMB_DEFS   = -DSLM_NO_STDIO -DSLM_NO_MALLOC -DSLM_NO_THREADS -DN_CTX=$(EMB_CTX) -DN_BATCH=$(EMB_BATCH)
EMB_CFLAGS = $(CSTD) -O2 $(WARN) -ffp-contract=off $(EMB_DEFS) -I. -I$(EMB_DIR)
EMB_SRC    = examples/embedded/main.c slm.c $(EMB_DIR)/model.c
# gcc 12 + binutils 2.40 with MVE: an if-converted conditional VCVT is
# emitted as "vcvtne", which the assembler rejects; -fno-if-conversion2 avoids it
M55_FLAGS  = -mcpu=cortex-m55 -mthumb -mfloat-abi=hard -fno-if-conversion2
M4_FLAGS   = -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16
# warnings are errors on the Cortex-M builds only: the CI compiler is the one
# they were cleaned with (Debian 12 gcc-arm-none-eabi 12.2), and newlib's
# uint32_t (unsigned long) catches format mistakes no host build sees;
# another arm-none-eabi-gcc may warn more: make ARM_WERROR= to build anyway
ARM_WERROR ?= -Werror
ARM_LINK   = --specs=rdimon.specs -nostartfiles -Lexamples/embedded examples/embedded/startup.c -lm

$(EMB_DIR)/gguf2c: tools/gguf2c.c slm.c slm.h
	mkdir -p $(EMB_DIR)
	$(CC) $(CSTD) -O2 $(WARN) -I. tools/gguf2c.c slm.c -o $@ $(LIBS)

$(EMB_DIR)/model.c: $(EMB_DIR)/gguf2c $(EMB_MODEL)
	$(EMB_DIR)/gguf2c --section .model_flash --ctx $(EMB_CTX) --batch $(EMB_BATCH) --isa scalar $(EMB_MODEL) $@ $(EMB_DIR)/model.h

$(EMB_DIR)/host: $(EMB_SRC) examples/embedded/main.c slm.h
	$(CC) $(EMB_CFLAGS) -DSLM_NO_SIMD $(EMB_SRC) -o $@ $(LIBS)

$(EMB_DIR)/m55.elf: $(EMB_SRC) examples/embedded/startup.c examples/embedded/an547.ld examples/embedded/sections.ld slm.h
	$(ARM_CC) $(M55_FLAGS) $(EMB_CFLAGS) $(ARM_WERROR) -T examples/embedded/an547.ld $(EMB_SRC) $(ARM_LINK) -o $@

$(EMB_DIR)/m4.elf: $(EMB_SRC) examples/embedded/startup.c examples/embedded/an386.ld examples/embedded/sections.ld slm.h
	$(ARM_CC) $(M4_FLAGS) $(EMB_CFLAGS) $(ARM_WERROR) -T examples/embedded/an386.ld $(EMB_SRC) $(ARM_LINK) -o $@

# the reference: the CLI with the scalar kernels (the SIMD kernels round
# differently in the last bits, and a sampled text can part at a near tie)
$(EMB_DIR)/slm-scalar: examples/slm.c slm.c slm.h $(SERVE_DEPS)
	mkdir -p $(EMB_DIR)
	$(CC) $(CSTD) -O2 $(WARN) -DSLM_NO_SIMD -I. examples/slm.c $(SERVE_SRC) slm.c -o $@ $(LIBS) -lpthread

# the kernel suite on the M55: Helium kernels against the scalar references
$(EMB_DIR)/kernels-m55.elf: tests/embedded_main.c tests/test_kernels.c $(TEST_INCLUDED) tests/util.c tests/test.h slm.c slm.h examples/embedded/startup.c examples/embedded/an547.ld
	mkdir -p $(EMB_DIR)
	$(ARM_CC) $(M55_FLAGS) $(CSTD) -O2 $(WARN) $(ARM_WERROR) -Wno-unused-function -DSLM_NO_THREADS -I. -T examples/embedded/an547.ld \
	    tests/embedded_main.c tests/test_kernels.c tests/util.c $(ARM_LINK) -o $@

embedded: $(EMB_DIR)/host $(EMB_DIR)/m55.elf $(EMB_DIR)/m4.elf $(EMB_DIR)/slm-scalar $(EMB_DIR)/kernels-m55.elf

test-embedded: embedded
	EMB_DIR=$(EMB_DIR) EMB_MODEL=$(EMB_MODEL) EMB_CTX=$(EMB_CTX) tools/test-embedded.sh

# Cross builds run under qemu-user (tools/install-cross.sh installs them).
test-cross:
	TEST_SRC="$(TEST_SRC)" OUT=$(BUILD)/cross tools/test-cross.sh

# the test sources, for tools/test-cross.sh run by hand
print-test-src:
	@echo $(TEST_SRC)

# ---- shared library, install, pkg-config --------------------------------------

# Only slm_ symbols leave the shared library (-fvisibility=hidden, SLM_API),
# every SLM_API function of slm.h is among them, and the soname has the
# major version.
check-exports: $(LIB_SO)
	sh tools/check-exports.sh slm.h $(LIB_SO) libslm.so.$(SOMAJOR)

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PCDIR      ?= $(LIBDIR)/pkgconfig
INSTALL    ?= install

# slm.pc for this PREFIX (rewritten on every install); the static link
# needs libm and the OpenMP runtime the library was built with.
$(BUILD)/slm.pc: FORCE | $(BUILD)
	@printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))' \
	  'includedir=$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))' '' \
	  'Name: slm' 'Description: Small language model inference in one C file' 'Version: $(VERSION)' \
	  'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -lslm' 'Libs.private: -lm $(OMPFLAGS)' > $@

FORCE:

install: all $(BUILD)/slm.pc
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PCDIR)
	$(INSTALL) -m 644 slm.h $(DESTDIR)$(INCLUDEDIR)/slm.h
	$(INSTALL) -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/libslm.a
	$(INSTALL) -m 755 $(LIB_SO_V) $(DESTDIR)$(LIBDIR)/libslm.so.$(VERSION)
	ln -sf libslm.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libslm.so.$(SOMAJOR)
	ln -sf libslm.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libslm.so
	$(INSTALL) -m 755 $(CLI) $(DESTDIR)$(BINDIR)/slm
	$(INSTALL) -m 644 $(BUILD)/slm.pc $(DESTDIR)$(PCDIR)/slm.pc

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/slm.h $(DESTDIR)$(LIBDIR)/libslm.a $(DESTDIR)$(LIBDIR)/libslm.so \
	      $(DESTDIR)$(LIBDIR)/libslm.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libslm.so.$(VERSION) \
	      $(DESTDIR)$(BINDIR)/slm $(DESTDIR)$(PCDIR)/slm.pc

# Install into a temporary prefix (and a DESTDIR staging tree), build
# tests/consumer against it through pkg-config, shared and static, run both,
# then uninstall and check nothing is left.
test-install:
	BUILD=$(BUILD) MAKE="$(MAKE)" CC="$(CC)" DEMO_MODEL=$(DEMO_MODEL) sh tools/test-install.sh

# ---- Windows: mingw-w64, run under wine ------------------------------------------

WIN_CC     ?= x86_64-w64-mingw32-gcc
WIN_OBJDUMP ?= x86_64-w64-mingw32-objdump
WINE       ?= /usr/lib/wine/wine64
WIN_BUILD  = $(BUILD)/win
# unaligned vector moves: gcc does not align the stack to 32 bytes for AVX
# spills on Win64; static: no libgomp/libwinpthread DLLs to carry around
WIN_CFLAGS = $(CSTD) $(OPT) $(MARCH) $(WARN) -Wa,-muse-unaligned-vector-move $(CFLAGS)
WIN_LIBS   = -static -lm
WIN_ENV    = WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
WIN_DEPS   = slm.c slm.h

$(WIN_BUILD)/slm.o: $(WIN_DEPS)
	mkdir -p $(WIN_BUILD)
	$(WIN_CC) $(WIN_CFLAGS) -fopenmp -c slm.c -o $@

$(WIN_BUILD)/libslm.a: $(WIN_BUILD)/slm.o
	rm -f $@ && x86_64-w64-mingw32-ar rcs $@ $<

# slm.dll and its import library libslm.dll.a (exports: the SLM_API functions)
$(WIN_BUILD)/slm.dll: $(WIN_DEPS)
	mkdir -p $(WIN_BUILD)
	$(WIN_CC) $(WIN_CFLAGS) -fopenmp -DSLM_BUILD_DLL -shared slm.c -o $@ -Wl,--out-implib,$(WIN_BUILD)/libslm.dll.a $(WIN_LIBS)

$(WIN_BUILD)/slm.exe: examples/slm.c $(SERVE_DEPS) $(WIN_BUILD)/libslm.a
	$(WIN_CC) $(WIN_CFLAGS) -fopenmp -I. examples/slm.c $(SERVE_SRC) $(WIN_BUILD)/libslm.a -o $@ $(WIN_LIBS)

$(WIN_BUILD)/run_tests.exe: $(TEST_SRC) $(TEST_INCLUDED) tests/test.h tests/gguf_build.h tests/vocab_build.h $(WIN_DEPS)
	mkdir -p $(WIN_BUILD)
	$(WIN_CC) $(WIN_CFLAGS) -fopenmp -Wno-unused-function -I. $(TEST_SRC) -o $@ $(WIN_LIBS)

$(WIN_BUILD)/run_tests_noomp.exe: $(TEST_SRC) $(TEST_INCLUDED) tests/test.h tests/gguf_build.h tests/vocab_build.h $(WIN_DEPS)
	mkdir -p $(WIN_BUILD)
	$(WIN_CC) $(WIN_CFLAGS) -Wno-unused-function -I. $(TEST_SRC) -o $@ $(WIN_LIBS)

# the consumer linked against the DLL's import library (runs next to slm.dll)
$(WIN_BUILD)/consumer_dll.exe: tests/consumer/consumer.c $(WIN_BUILD)/slm.dll
	$(WIN_CC) $(WIN_CFLAGS) -I. tests/consumer/consumer.c $(WIN_BUILD)/libslm.dll.a -o $@ $(WIN_LIBS)

windows: $(WIN_BUILD)/libslm.a $(WIN_BUILD)/slm.dll $(WIN_BUILD)/slm.exe

# The whole suite under wine, with OpenMP and without; the CLI and a program
# using slm.dll generate the demo text, which must equal the native build's.
test-windows: windows $(WIN_BUILD)/run_tests.exe $(WIN_BUILD)/run_tests_noomp.exe $(WIN_BUILD)/consumer_dll.exe
	sh tools/check-exports.sh slm.h $(WIN_BUILD)/slm.dll
	$(WIN_ENV) SLM_CLI=$(WIN_BUILD)/slm.exe $(WINE) $(WIN_BUILD)/run_tests.exe
	$(WIN_ENV) SLM_CLI=$(WIN_BUILD)/slm.exe $(WINE) $(WIN_BUILD)/run_tests_noomp.exe
	BUILD=$(BUILD) MAKE="$(MAKE)" CC="$(CC)" OMPFLAGS="$(OMPFLAGS)" WINE="$(WINE)" DEMO_MODEL=$(DEMO_MODEL) sh tools/test-windows-cli.sh

# ---- CMake: a consumer project that does add_subdirectory() on this tree -------

test-cmake:
	BUILD=$(BUILD) DEMO_MODEL=$(DEMO_MODEL) sh tools/test-cmake.sh

# Kernel micro-benchmark: SIMD kernels next to the scalar references.
BENCHBIN = $(BUILD)/bench_kernels
$(BENCHBIN): bench/bench_kernels.c slm.c slm.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -Wno-unused-function -I. bench/bench_kernels.c -o $@ $(LDFLAGS) $(LIBS)

bench: $(BENCHBIN)
	./$(BENCHBIN) $(BENCH_ARGS)

# Vocabulary-only load: allocations, bytes requested, peak RSS and time for
# GPT-2's vocabulary and a generated Qwen2-size one (bench/vocab_load.c).
VOCABBIN = $(BUILD)/vocab_load
$(VOCABBIN): bench/vocab_load.c slm.c slm.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -I. bench/vocab_load.c slm.c -o $@ $(LDFLAGS) $(LIBS)

$(BUILD)/qwen2-size-vocab.gguf: $(VOCABBIN)
	./$(VOCABBIN) --gen-qwen2 $@

bench-vocab: $(VOCABBIN) $(BUILD)/qwen2-size-vocab.gguf
	./$(VOCABBIN) tests/data/tokenizer/ggml-vocab-gpt-2.gguf
	./$(VOCABBIN) $(BUILD)/qwen2-size-vocab.gguf
	./$(VOCABBIN) --no-mmap tests/data/tokenizer/ggml-vocab-gpt-2.gguf
	./$(VOCABBIN) --no-mmap $(BUILD)/qwen2-size-vocab.gguf

# Streaming read bandwidth at 1 and 2 threads (the decode limit):
# BANDWIDTH_ARGS='-t 1,2,4 -s 2048 -r 5'
$(BUILD)/bandwidth: bench/bandwidth.c | $(BUILD)
	$(CC) $(CSTD) $(OPT) $(WARN) $(CFLAGS) bench/bandwidth.c -o $@ $(LDFLAGS) -lpthread

bench-bandwidth: $(BUILD)/bandwidth
	./$(BUILD)/bandwidth $(BANDWIDTH_ARGS)

# Attention alone (one layer, one thread, CPU time): flash against the
# reference path at depth 0, 2048, 8192; BENCH_ATTN_ARGS='14 2 64' (Qwen2.5-0.5B)
$(BUILD)/bench_attention: bench/bench_attention.c slm.c slm.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -Wno-unused-function -I. bench/bench_attention.c -o $@ $(LDFLAGS) $(LIBS)

bench-attention: $(BUILD)/bench_attention
	./$(BUILD)/bench_attention $(BENCH_ATTN_ARGS)

# The gated delta rule alone (16 heads of 128 x 128, one thread): token by
# token against chunked; BENCH_SCAN_ARGS='tokens rounds' (default 128 10)
$(BUILD)/bench_scan: bench/bench_scan.c slm.c slm.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -Wno-unused-function -I. bench/bench_scan.c -o $@ $(LDFLAGS) $(LIBS)

bench-scan: $(BUILD)/bench_scan
	./$(BUILD)/bench_scan $(BENCH_SCAN_ARGS)

clean:
	rm -rf $(BUILD)

help:
	@echo "make            library ($(LIB_A), $(LIB_SO)) and CLI ($(CLI))"
	@echo "make run        build, then generate text with the built-in demo model"
	@echo "make test       build and run every test (ends with 'N passed, N failed')"
	@echo "make test-sanitize  the test suite under ASan+UBSan with leak checking"
	@echo "make test-tsan      the concurrency tests under ThreadSanitizer"
	@echo "make docs-check  links in the Markdown files, the README example and test commands (part of make test)"
	@echo "make test-hello  build examples/hello.c (the README example) and check its text against slm run (part of make test)"
	@echo "make test-python  the Python binding's tests (examples/python; part of make test)"
	@echo "make test-node  the Node.js binding's tests (examples/node; installs koffi with npm)"
	@echo "make test-serve slm serve with the openai and ollama npm clients and curl (part of make test)"
	@echo "make test-serve-sanitize  the same with the server under ASan+UBSan, then TSan"
	@echo "make fuzz       libFuzzer targets in $(BUILD)/fuzz (clang)"
	@echo "make test-fuzz  replay the fuzz corpus under the sanitizers"
	@echo "make pretok-check  BPE pre-tokenizers vs their regular expressions (Python + regex)"
	@echo "make pretok-vectors  BPE pre-tokenizers vs a llama.cpp build (LLAMA=path, N=texts per name)"
	@echo "make unicode-tables  regenerate the Unicode tables in slm.c (tools/gen_unicode.py)"
	@echo "make NATIVE=1   build for this machine's CPU only (-march=native; default: portable, kernels chosen at run time)"
	@echo "make OPENMP=0   build without OpenMP"
	@echo "make CFLAGS=-DSLM_NO_SIMD   scalar reference kernels only"
	@echo "make test-cross build and run the tests under qemu for aarch64 (NEON, dotprod), armv7,"
	@echo "                riscv64 RVV (VLEN 128, 256), s390x, and one portable x86-64 build under"
	@echo "                Nehalem, Haswell and qemu64 CPUs (tools/install-cross.sh)"
	@echo "make test-embedded  the embedded example (examples/embedded) on Cortex-M55 and M4F under"
	@echo "                qemu-system-arm, its text checked against a native build"
	@echo "make install    install slm.h, libslm.a, libslm.so.$(VERSION) (+ links), bin/slm, slm.pc"
	@echo "                (PREFIX=$(PREFIX), DESTDIR, BINDIR, LIBDIR, INCLUDEDIR, PCDIR); make uninstall"
	@echo "make check-exports  only slm_ symbols exported by $(LIB_SO), soname libslm.so.$(SOMAJOR)"
	@echo "make test-install   install into a temp prefix, build a consumer via pkg-config, run it"
	@echo "make test-cmake     CMake consumers: add_subdirectory (static, shared), plain files"
	@echo "make windows    mingw-w64 build in $(WIN_BUILD): libslm.a, slm.dll + libslm.dll.a, slm.exe"
	@echo "make test-windows   the test suite (OpenMP on and off), CLI and DLL under wine"
	@echo "make bench      kernel benchmark, SIMD next to scalar (BENCH_ARGS=--quick, BENCH_ARGS='--isa avx2')"
	@echo "make bench-dispatch  the portable build against the -march=native one (THREADS=1|2)"
	@echo "make bench-vocab  vocabulary-only load of GPT-2 and a Qwen2-size vocabulary: allocations, bytes, RSS, time"
	@echo "make bench-gemm  the prefill GEMM against the small-batch kernels, one matrix at a time"
	@echo "make bench-models   generate random-weight models with real shapes (SmolLM2-135M, Qwen2.5-0.5B)"
	@echo "                in $(BENCH_DIR) for build/slm bench -m FILE"
	@echo "make bench-bandwidth  streaming read bandwidth at 1 and 2 threads (BANDWIDTH_ARGS='-t 1,2 -s 1024')"
	@echo "make bench-attention  attention alone, flash vs the reference path, depth 0/2048/8192 (BENCH_ATTN_ARGS='14 2 64')"
	@echo "make bench-scan       the gated delta rule alone, chunked vs token by token (BENCH_SCAN_ARGS='128 10')"
	@echo "make bench-compare  slm against llama.cpp / ik_llama.cpp (LLAMA_BENCH=, IK_BENCH=; bench/README.md)"
	@echo "make clean      remove $(BUILD)/"

# Grammar-masked sampling on a large vocabulary (the union of real
# vocabularies, cut at Qwen2.5's 151,936 rows) under the JSON grammar;
# BENCH_GRAMMAR_ARGS adds e.g. --decode MODEL.gguf --threads 1 and more
# vocabularies (see bench/bench_grammar.c).
BENCH_GRAMMAR_VOCABS ?= tests/data/tokenizer/ggml-vocab-gpt-2.gguf tests/data/tokenizer/ggml-vocab-starcoder.gguf \
                        tests/data/tokenizer/ggml-vocab-llama-spm.gguf tests/data/tokenizer/ggml-vocab-phi-3.gguf
$(BUILD)/bench_grammar: bench/bench_grammar.c slm.c slm.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -Wno-unused-function -D_POSIX_C_SOURCE=200809L -I. bench/bench_grammar.c -o $@ $(LDFLAGS) $(LIBS)

# The prefill GEMM against the small-batch kernels, one matrix at a time.
$(BUILD)/bench_gemm: bench/bench_gemm.c slm.c slm.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -Wno-unused-function -I. bench/bench_gemm.c -o $@ $(LDFLAGS) $(LIBS)

bench-gemm: $(BUILD)/bench_gemm
	./$(BUILD)/bench_gemm

bench-grammar: $(BUILD)/bench_grammar
	./$(BUILD)/bench_grammar $(BENCH_GRAMMAR_ARGS) $(BENCH_GRAMMAR_VOCABS)
