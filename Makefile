# qstar build. `make` builds libqstar.a and the qstar CLI; `make test` runs
# every unit test; `make SAN=1 test` does the same under ASan+UBSan.
# Dependencies are Debian packages found with pkg-config (see `make deps`).

CC      ?= cc
PREFIX  ?= /usr/local
PKGS    := openblas libcjson libpcre2-8 libutf8proc
TESTPKGS := cmocka

ifeq ($(SAN),1)
BUILD   := build-san
OPT     ?= -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDSAN   := -fsanitize=address,undefined
else
BUILD   := build
OPT     ?= -O3 -march=native -g
LDSAN   :=
endif

# Missing dependency => tell the user the exact install line, then stop.
MISSING := $(shell for p in $(PKGS); do pkg-config --exists $$p 2>/dev/null || echo $$p; done)
ifneq ($(MISSING),)
ifneq ($(MAKECMDGOALS),deps)
$(error missing libraries ($(MISSING)); run: sudo apt-get install -y pkg-config libopenblas-dev libcjson-dev libpcre2-dev libutf8proc-dev libcmocka-dev)
endif
endif

CFLAGS  := -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror \
           -fopenmp $(OPT) -Iinclude -Isrc $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -fopenmp $(LDSAN)

SRC     := $(sort $(wildcard src/*/*.c))
OBJ     := $(SRC:%.c=$(BUILD)/%.o)
LIB     := $(BUILD)/libqstar.a
BIN     := $(BUILD)/qstar
TESTSRC := $(sort $(wildcard tests/test_*.c))
TESTBIN := $(TESTSRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all test unit clitest demo bench reference install deps clean fuzz fuzz-build

all: $(LIB) $(BIN)
	@ln -sf $(BUILD)/qstar qstar

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(wildcard tools/*.c) $(wildcard tools/*.h) $(LIB)
	$(CC) $(CFLAGS) $(wildcard tools/*.c) $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c tests/testutil.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(shell pkg-config --cflags $(TESTPKGS) 2>/dev/null) $< $(LIB) \
	    $(shell pkg-config --libs $(TESTPKGS) 2>/dev/null) $(LDLIBS) -o $@

# Unit tests (cmocka) then CLI tests. QSTAR_DATA points at the shared data;
# tests that need it skip with a message when it is absent.
test: all $(TESTBIN)
	@pkg-config --exists cmocka || { echo "missing cmocka; run: sudo apt-get install -y libcmocka-dev"; exit 1; }
	@BUILD=$(BUILD) scripts/run-tests.sh $(TESTBIN)

demo: all
	@scripts/demo.sh

bench: all
	@scripts/bench.sh

# libFuzzer harnesses (clang): one per tests/fuzz/fuzz_<name>.c, linked against a
# library built with -fsanitize=fuzzer-no-link,address,undefined in build-fuzz/.
# `make fuzz FUZZ_SECONDS=N` builds them, replays tests/fuzz/regress/<name>/
# (every past finding) and runs each target N seconds (seeds: tests/fuzz/make_seeds.py).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_FLAGS   := -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -g -O1 -fno-omit-frame-pointer -fopenmp -Wno-pass-failed \
                -fsanitize=address,undefined -fno-sanitize-recover=undefined -Iinclude -Isrc -Itests/fuzz \
                $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_SRC     := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN     := $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)
FUZZ_OBJ     := $(SRC:%.c=build-fuzz/%.o)

build-fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

build-fuzz/libqstar.a: $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard tests/fuzz/*.h) build-fuzz/libqstar.a
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer $< build-fuzz/libqstar.a $(LDLIBS) -o $@

build-fuzz/seed_train_state: tests/fuzz/seed_train_state.c $(wildcard tests/fuzz/*.h) build-fuzz/libqstar.a
	$(FUZZ_CC) $(FUZZ_FLAGS) $< build-fuzz/libqstar.a $(LDLIBS) -o $@

fuzz-build: $(FUZZ_BIN) build-fuzz/seed_train_state

fuzz: fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh $(FUZZ_BIN)

# Regenerate the PyTorch reference fixtures under tests/fixtures/.
reference:
	@scripts/reference.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/qstar.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|0.1.0|' qstar.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/qstar.pc

deps:
	sudo apt-get install -y pkg-config libopenblas-dev libcjson-dev libpcre2-dev libutf8proc-dev libcmocka-dev python3-torch python3-numpy gnuplot-nox clang libclang-rt-14-dev libomp-dev

clean:
	rm -rf build build-san build-fuzz qstar

-include $(OBJ:.o=.d)
-include $(wildcard build-fuzz/src/*/*.d)
