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

# PUBCFLAGS: what a program on the public header alone compiles with (the
# CLI in tools/); the library and the unit tests also see the internal headers.
PUBCFLAGS := -std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror \
           -fopenmp $(OPT) -Iinclude $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CFLAGS  := $(PUBCFLAGS) -Isrc
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -fopenmp $(LDSAN)
# Open MPI (optional, Debian openmpi-bin libopenmpi-dev): data-parallel training
# under mpirun (src/train/dist.c). Without it (or with NOMPI=1) qstar is
# single-process and says what to install when started by mpirun.
ifneq ($(NOMPI),1)
ifeq ($(shell pkg-config --exists ompi-c 2>/dev/null && echo yes),yes)
MPI_PKG := ompi-c
CFLAGS  += -DQS_HAVE_MPI $(shell pkg-config --cflags ompi-c)
LDLIBS  += $(shell pkg-config --libs ompi-c)
endif
endif

# oneDNN (Debian libdnnl-dev, no pkg-config file): the matmul backend when its
# header is found; without it every product runs on OpenBLAS. DNNL=0 forces that.
DNNL    ?= $(shell printf '\043include <oneapi/dnnl/dnnl.h>\n' | $(CC) -E -x c - >/dev/null 2>&1 && echo 1)
ifeq ($(DNNL),1)
CFLAGS  += -DQS_HAVE_DNNL
LDLIBS  += -ldnnl
endif

SRC     := $(sort $(wildcard src/*/*.c))
OBJ     := $(SRC:%.c=$(BUILD)/%.o)
LIB     := $(BUILD)/libqstar.a
# libqstar.so: the same objects (position-independent, hidden by default:
# only the QSTAR_API functions of include/qstar.h are exported)
VERSION := 0.1.0
SOMAJOR := 0
SONAME  := libqstar.so.$(SOMAJOR)
SO      := $(BUILD)/libqstar.so.$(VERSION)
LIBCFLAGS := -fPIC -fvisibility=hidden
BIN     := $(BUILD)/qstar
TESTSRC := $(sort $(wildcard tests/test_*.c))
TESTBIN := $(TESTSRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all test unit clitest demo bench reference install deps clean examples fuzz fuzz-build experiment

all: $(LIB) $(SO) $(BIN)
	@ln -sf $(BUILD)/qstar qstar

# objects built before the library flags changed (-fPIC) are rebuilt once
$(BUILD)/.libflags-pic:
	@mkdir -p $(BUILD) && touch $@

# The ops (the attention, norms, activations, losses) let the compiler fuse a * b + c into
# one FMA (-std=c11 alone forbids it): the thought attention's forward took 16% less time
# at head size 8. Results stay deterministic for a given build.
$(BUILD)/src/ops/%.o: CFLAGS += -ffp-contract=fast

$(BUILD)/src/%.o: src/%.c $(BUILD)/.libflags-pic
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LIBCFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(OBJ)
	@rm -f $@
	ar rcs $@ $^

$(SO): $(OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--no-undefined $(OPT) $^ $(LDLIBS) -o $@
	@ln -sf libqstar.so.$(VERSION) $(BUILD)/$(SONAME)
	@ln -sf $(SONAME) $(BUILD)/libqstar.so

# The CLI is built from the public header alone (PUBCFLAGS: include/ only):
# it can use only what include/qstar.h offers, like any program linking libqstar.
$(BIN): $(wildcard tools/*.c) $(wildcard tools/*.h) $(LIB)
	$(CC) $(PUBCFLAGS) $(wildcard tools/*.c) $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/%.c tests/testutil.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(shell pkg-config --cflags $(TESTPKGS) 2>/dev/null) $< $(LIB) \
	    $(shell pkg-config --libs $(TESTPKGS) 2>/dev/null) $(LDLIBS) -o $@

# Unit tests (cmocka) then CLI tests. QSTAR_DATA points at the shared data;
# tests that need it skip with a message when it is absent.
test: all $(TESTBIN)
	@pkg-config --exists cmocka || { echo "missing cmocka; run: sudo apt-get install -y libcmocka-dev"; exit 1; }
	@BUILD=$(BUILD) QSTAR_LDLIBS='$(LDLIBS)' scripts/run-tests.sh $(TESTBIN)

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

# The thinking experiment (experiments/arith): SEED=S (seeds S..S+2), QUICK=1 (tiny, for CI),
# COMPARE=DIR (another run: the report says whether this one reproduces its conclusions).
experiment: all
	@SEED=$(SEED) QUICK=$(QUICK) COMPARE=$(COMPARE) experiments/arith/run.sh

# Regenerate the PyTorch reference fixtures under tests/fixtures/.
reference:
	@scripts/reference.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(SO) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libqstar.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/libqstar.so
	install -m 644 include/qstar.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@DNNL_LIBS@|$(if $(filter 1,$(DNNL)),-ldnnl,)|' -e 's|@MPI_PKG@|$(MPI_PKG)|' qstar.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/qstar.pc
	install -d $(DESTDIR)$(PREFIX)/lib/python3/dist-packages/qstar
	install -m 644 python/qstar/*.py $(DESTDIR)$(PREFIX)/lib/python3/dist-packages/qstar/

# The C examples built against an installed prefix (make install PREFIX=...)
# through pkg-config, linked with libqstar.so and with libqstar.a.
EXDIR   ?= $(BUILD)/examples
examples:
	@mkdir -p $(EXDIR)
	@for e in generate train; do \
	  PKG_CONFIG_PATH=$(PREFIX)/lib/pkgconfig; export PKG_CONFIG_PATH; \
	  echo "$(CC) examples/$$e.c -> $(EXDIR)/$$e (shared), $(EXDIR)/$$e-static"; \
	  $(CC) -O2 examples/$$e.c $$(pkg-config --cflags --libs qstar) -Wl,-rpath,$(PREFIX)/lib -o $(EXDIR)/$$e || exit 1; \
	  $(CC) -O2 examples/$$e.c $$(pkg-config --cflags qstar) \
	    $$(pkg-config --static --libs qstar | sed 's/-lqstar/-l:libqstar.a/') -o $(EXDIR)/$$e-static || exit 1; \
	done

deps:
	sudo apt-get install -y pkg-config libopenblas-dev libcjson-dev libpcre2-dev libutf8proc-dev libcmocka-dev libdnnl-dev python3-torch python3-numpy gnuplot-nox python3-pytest python3-matplotlib python3-sentencepiece openmpi-bin libopenmpi-dev clang libclang-rt-14-dev libomp-dev

clean:
	rm -rf build build-san build-fuzz qstar

-include $(OBJ:.o=.d)
-include $(wildcard build-fuzz/src/*/*.d)
