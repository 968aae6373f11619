# recur build. `make` builds everything; `make test` installs what is missing, builds and
# runs every test; `make asan` runs the whole suite under ASan+UBSan (leaks included).
BUILD ?= build
CC ?= cc
LUA_INC ?= /usr/include/lua5.4
BLAS_INC ?= /usr/include/x86_64-linux-gnu/openblas-pthread
OPT ?= -O2
SAN ?=
CFLAGS_BASE = -std=c11 $(OPT) -g -Wall -Wextra -Werror -fPIC -D_POSIX_C_SOURCE=200809L \
  -I$(LUA_INC) -I$(BLAS_INC) -Iinclude $(SAN)
CFLAGS ?=
ALL_CFLAGS = $(CFLAGS_BASE) $(CFLAGS)
LIBS = -lopenblas -lz -lm -lpthread
LUA_LIB = -llua5.4

RUNTIME_SRC = $(sort $(wildcard runtime/*.c))
BINDINGS_SRC = $(filter-out bindings/recur_cli.c,$(sort $(wildcard bindings/*.c)))
LUA_SRC = $(shell find bindings/lua -name '*.lua' | sort)
CTEST_SRC = $(sort $(wildcard tests/c/*.c))

RUNTIME_OBJ = $(RUNTIME_SRC:%.c=$(BUILD)/%.o)
BINDINGS_OBJ = $(BINDINGS_SRC:%.c=$(BUILD)/%.o) $(BUILD)/embedded_lua.o
CTEST_BIN = $(CTEST_SRC:tests/c/%.c=$(BUILD)/tests/%)

.PHONY: all deps test asan clean bench demo format install examples
all: $(BUILD)/librecur.a $(BUILD)/recur.so $(BUILD)/recur $(CTEST_BIN)

$(BUILD)/%.o: %.c $(wildcard runtime/*.h bindings/*.h include/*.h)
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(ALL_CFLAGS) -c $< -o $@

# The nn kernels are branch-free loops meant for SIMD; these flags change no result (see the
# header of runtime/nn_kernels.c).
$(BUILD)/runtime/nn_kernels.o: CFLAGS += -O3 -fno-math-errno -fno-trapping-math
# The fused cells' elementwise passes, for the same reasons (runtime/rnn_impl.h, RN_CLONES).
$(BUILD)/runtime/rnn_lstm.o $(BUILD)/runtime/rnn_gru.o $(BUILD)/runtime/rnn_vanilla.o \
  $(BUILD)/runtime/rnn_common.o: CFLAGS += -O3 -fno-math-errno -fno-trapping-math

$(BUILD)/librecur.a: $(RUNTIME_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/embedded_lua.c: $(LUA_SRC) tools/embed_lua.sh
	@mkdir -p $(BUILD)
	sh tools/embed_lua.sh $@ bindings/lua

$(BUILD)/embedded_lua.o: $(BUILD)/embedded_lua.c
	@echo "CC $<"
	@$(CC) $(ALL_CFLAGS) -c $< -o $@

# The Lua module for a stock lua5.4: Lua's symbols come from the host interpreter.
$(BUILD)/recur.so: $(BINDINGS_OBJ) $(BUILD)/librecur.a
	$(CC) $(SAN) -shared -o $@ $(BINDINGS_OBJ) $(BUILD)/librecur.a $(LIBS)

# The program: Lua 5.4 with recur preloaded; exports Lua's API so C modules load.
$(BUILD)/recur: $(BUILD)/bindings/recur_cli.o $(BINDINGS_OBJ) $(BUILD)/librecur.a
	$(CC) $(SAN) -Wl,-E -o $@ $^ $(LUA_LIB) -lreadline $(LIBS)

$(BUILD)/tests/%: tests/c/%.c $(BUILD)/librecur.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/librecur.a $(LIBS)

deps:
	@sh tools/deps.sh

test: deps
	$(MAKE) all
	sh tools/run_tests.sh $(BUILD)

asan: deps
	$(MAKE) all BUILD=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
	ASAN=1 RECUR_SANITIZED=1 sh tools/run_tests.sh build-asan

# The main job on a default that works offline once installed: trains a character-level LSTM
# for about three minutes and prints generated text (scripts/demo_charrnn.sh).
demo: deps
	$(MAKE) all
	sh scripts/demo_charrnn.sh $(BUILD)

bench: all
	sh bench/run.sh $(BUILD)

format:
	clang-format -i runtime/*.c runtime/*.h bindings/*.c bindings/*.h tests/c/*.c include/*.h

clean:
	rm -rf build build-asan build-*
