# slm - build, test, benchmark.  `make help` lists the targets.

CC      ?= cc
OPT     ?= -O2
MARCH   ?= -march=native
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

VERSION  := $(shell sed -n 's/^\#define SLM_VERSION_STRING "\(.*\)"/\1/p' slm.h)
SOMAJOR  := $(word 1,$(subst ., ,$(VERSION)))

BUILD    ?= build
LIB_A    = $(BUILD)/libslm.a
LIB_SO   = $(BUILD)/libslm.so
CLI      = $(BUILD)/slm
TESTBIN  = $(BUILD)/run_tests

TEST_SRC = tests/test_main.c tests/util.c tests/test_gguf.c tests/test_models.c tests/test_kernels.c

.PHONY: all lib cli test test-cross bench clean help

all: $(LIB_A) $(LIB_SO) $(CLI)

$(BUILD):
	mkdir -p $(BUILD)

$(BUILD)/slm.o: slm.c slm.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -c slm.c -o $@

$(BUILD)/slm.pic.o: slm.c slm.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -c slm.c -o $@

$(LIB_A): $(BUILD)/slm.o
	rm -f $@ && ar rcs $@ $<

$(LIB_SO): $(BUILD)/slm.pic.o
	$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,libslm.so.$(SOMAJOR) $< -o $@ $(LDFLAGS) $(LIBS)

$(CLI): examples/slm.c $(LIB_A)
	$(CC) $(ALL_CFLAGS) -I. examples/slm.c $(LIB_A) -o $@ $(LDFLAGS) $(LIBS)

# The test runner includes slm.c itself (to reach the static kernels).
$(TESTBIN): $(TEST_SRC) tests/test.h slm.c slm.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -Wno-unused-function -I. $(TEST_SRC) -o $@ $(LDFLAGS) $(LIBS)

test: all $(TESTBIN)
	./$(TESTBIN)

# Cross builds run under qemu-user (tools/install-cross.sh installs them).
test-cross:
	TEST_SRC="$(TEST_SRC)" OUT=$(BUILD)/cross tools/test-cross.sh

# Kernel micro-benchmark: SIMD kernels next to the scalar references.
BENCHBIN = $(BUILD)/bench_kernels
$(BENCHBIN): bench/bench_kernels.c slm.c slm.h | $(BUILD)
	$(CC) $(ALL_CFLAGS) -Wno-unused-function -I. bench/bench_kernels.c -o $@ $(LDFLAGS) $(LIBS)

bench: $(BENCHBIN)
	./$(BENCHBIN) $(BENCH_ARGS)

clean:
	rm -rf $(BUILD)

help:
	@echo "make            library ($(LIB_A), $(LIB_SO)) and CLI ($(CLI))"
	@echo "make test       build and run every test (ends with 'N passed, N failed')"
	@echo "make OPENMP=0   build without OpenMP"
	@echo "make CFLAGS=-DSLM_NO_SIMD   scalar reference kernels only"
	@echo "make test-cross build and run the tests under qemu for aarch64 (NEON, dotprod), armv7,"
	@echo "                riscv64 RVV (VLEN 128, 256), x86-64 without AVX2, s390x (tools/install-cross.sh)"
	@echo "make bench      kernel benchmark, SIMD next to scalar (BENCH_ARGS=--quick)"
	@echo "make clean      remove $(BUILD)/"
