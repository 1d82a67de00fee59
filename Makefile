# ari-lua build.  `make` builds ./ari-lua (the source tree's host: Lua files
# from ./lua first), build/ari/core.so and build/bin/ari-lua (the host that
# `make install` and LuaRocks install: Lua files from its installed tree only).
VERSION    := 0.1.0
PREFIX     ?= /usr/local
DESTDIR    ?=
LUA_VER    := 5.4
LUADIR     ?= $(PREFIX)/share/lua/$(LUA_VER)
CLUADIR    ?= $(PREFIX)/lib/lua/$(LUA_VER)
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man/man1
BUILD      ?= build

# Headers and libraries: pkg-config's, unless the caller says where they
# are.  LuaRocks does (rockspec/ passes its LUA_INCDIR, LUA_LIBDIR, LUALIB
# and the external dependencies' CURL_, LIBWEBSOCKETS_ and LIBUV_ INCDIR and
# LIBDIR), as lua-cjson's build takes LUA_INCLUDE_DIR.
ifneq ($(LUA_INCDIR),)
LUA_CFLAGS := -I$(LUA_INCDIR)
LUA_LIBS   := $(if $(LUA_LIBDIR),-L$(LUA_LIBDIR)) \
              -l$(if $(LUALIB),$(patsubst lib%,%,$(basename $(LUALIB))),lua$(LUA_VER))
else
LUA_CFLAGS := $(shell pkg-config --cflags lua$(LUA_VER) 2>/dev/null)
LUA_LIBS   := $(shell pkg-config --libs lua$(LUA_VER) 2>/dev/null)
endif
ifneq ($(CURL_INCDIR)$(LIBWEBSOCKETS_INCDIR)$(LIBUV_INCDIR),)
DEP_CFLAGS := $(foreach d,$(CURL_INCDIR) $(LIBWEBSOCKETS_INCDIR) $(LIBUV_INCDIR),-I$(d))
DEP_LIBS   := $(foreach d,$(sort $(CURL_LIBDIR) $(LIBWEBSOCKETS_LIBDIR) $(LIBUV_LIBDIR)),-L$(d)) \
              -lcurl -lwebsockets -luv
else
DEP_CFLAGS := $(shell pkg-config --cflags libcurl libwebsockets libuv 2>/dev/null)
DEP_LIBS   := $(shell pkg-config --libs libcurl libwebsockets libuv 2>/dev/null)
endif

CC         ?= cc
CFLAGS     ?= -O2 -g
# Warnings stop the build in CI, `make check`, `make test` and the fuzzers
# (WERROR=-Werror); a user's build on another compiler only reports them.
WERROR     ?=
ALL_CFLAGS  = $(CFLAGS) -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra $(WERROR) \
              -fPIC $(LUA_CFLAGS) $(DEP_CFLAGS) -DARI_VERSION='"$(VERSION)"' -DARI_LUADIR='"$(LUADIR)"'
LDFLAGS    ?=

SRCS       := $(filter-out src/main.c,$(wildcard src/*.c))
OBJS       := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(SRCS))
HDRS       := $(wildcard src/*.h)

BUSTED     ?= lua5.4 /usr/bin/busted
JOBS       ?= 2

.PHONY: install-rock install-files all test test-asterisk test-deps check valgrind install uninstall deps demo clean \
        bench fuzz fuzz-build soak

all: ari-lua $(BUILD)/ari/core.so $(BUILD)/bin/ari-lua

test check valgrind fuzz-build: WERROR = -Werror

# spec/oom_spec.lua's host: ari.core in a Lua state whose allocator fails on
# demand (not installed).
$(BUILD)/test/oom_host: spec/oom/oom_host.c $(OBJS) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(OBJS) $(DEP_LIBS) $(LUA_LIBS) -lm

ari-lua: $(BUILD)/obj/main-tree.o $(OBJS)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(DEP_LIBS) $(LUA_LIBS) -lm

$(BUILD)/bin/ari-lua: $(BUILD)/obj/main.o $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(DEP_LIBS) $(LUA_LIBS) -lm

$(BUILD)/ari/core.so: $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -shared -o $@ $^ $(DEP_LIBS) -lm

$(BUILD)/obj/main-tree.o: src/main.c $(HDRS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DARI_SOURCE_TREE=1 -c -o $@ $<

$(BUILD)/obj/%.o: src/%.c $(HDRS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The whole suite: the simulator-backed specs, then the real-server specs
# (spec/asterisk/) against a real Asterisk 22 started for them (reported
# skipped where ../shared/asterisk is absent).
test: test-deps all $(BUILD)/test/oom_host
	lua5.4 tools/run-tests.lua -j $(JOBS) --asterisk 22

# Only the real-server specs, against Asterisk $(ASTERISK) (18, 20, 22 or 23);
# ASTERISK_TAGS=core runs the core subset (tests tagged #core).
ASTERISK      ?= 22
ASTERISK_TAGS ?=
test-asterisk: test-deps all
	lua5.4 tools/run-tests.lua -j $(JOBS) --asterisk $(ASTERISK) --only-asterisk $(if $(ASTERISK_TAGS),--tags $(ASTERISK_TAGS),)

# The suite again with AddressSanitizer and UndefinedBehaviorSanitizer:
# busted runs inside the instrumented host (ari-lua --plain), whose built-in
# ari.core is the sanitized one; no LD_PRELOAD leaks into child processes.
ASAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
check: test-deps
	$(MAKE) BUILD=build/asan CFLAGS="$(ASAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined" WERROR=-Werror \
	  build/asan/ari-lua build/asan/ari/core.so build/asan/test/oom_host
	LUA_PATH_5_4="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;" \
	  ARI_LUA_BIN=build/asan/ari-lua ARI_OOM_HOST=build/asan/test/oom_host BUSTED="build/asan/ari-lua --plain /usr/bin/busted" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  lua5.4 tools/run-tests.lua -j $(JOBS)

build/asan/ari-lua: build/asan/obj/main.o $(patsubst src/%.c,build/asan/obj/%.o,$(SRCS))
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(DEP_LIBS) $(LUA_LIBS) -lm

# A short run under valgrind: no definite leaks, no invalid accesses.
valgrind: test-deps all
	sh tools/valgrind-check.sh

# Fuzzing (clang + libFuzzer, spec/fuzz/): `make fuzz` builds the targets and
# runs each for FUZZ_SECONDS (in parallel, FUZZ_JOBS at a time) on its corpus.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_JOBS    ?= 2
FUZZ_NAMES   := json url event http ws httpreq media
FUZZ_SAN     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS   = $(FUZZ_SAN) -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -Werror \
               $(LUA_CFLAGS) $(DEP_CFLAGS) -DARI_VERSION='"$(VERSION)"' -DARI_LUADIR='"$(LUADIR)"'
FUZZ_BINS    := $(patsubst %,build/fuzz/fuzz_%,$(FUZZ_NAMES))
fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(FUZZ_JOBS) sh tools/fuzz.sh $(FUZZ_NAMES)
# Long load runs (figures in docs/reliability.md), tools/soak.sh: SOAK_CONCURRENT
# calls at once; up to SOAK_SEQUENTIAL calls SOAK_SEQ_CONCURRENCY at a time for at
# most SOAK_SECONDS against a separate simulator process (RSS every SOAK_SAMPLE s);
# the same with the client under valgrind for SOAK_VALGRIND_SECONDS.
SOAK_CONCURRENT       ?= 10000
SOAK_SEQUENTIAL       ?= 1000000
SOAK_SEQ_CONCURRENCY  ?= 1
SOAK_SECONDS          ?= 1200
SOAK_VALGRIND_SECONDS ?= 600
SOAK_SAMPLE           ?= 60
SOAK_SPEED            ?= 1000
soak: all
	SOAK_CONCURRENT=$(SOAK_CONCURRENT) SOAK_SEQUENTIAL=$(SOAK_SEQUENTIAL) SOAK_SEQ_CONCURRENCY=$(SOAK_SEQ_CONCURRENCY) \
	  SOAK_SECONDS=$(SOAK_SECONDS) SOAK_VALGRIND_SECONDS=$(SOAK_VALGRIND_SECONDS) SOAK_SAMPLE=$(SOAK_SAMPLE) \
	  SOAK_SPEED=$(SOAK_SPEED) sh tools/soak.sh
fuzz-build: test-deps $(FUZZ_BINS)
.PRECIOUS: build/fuzz/obj/%.o
build/fuzz/obj/%.o: src/%.c $(HDRS) Makefile
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<
build/fuzz/fuzz_%: spec/fuzz/fuzz_%.c spec/fuzz/fuzz_common.h spec/fuzz/fuzz_check.h $(patsubst src/%.c,build/fuzz/obj/%.o,$(SRCS))
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -DFUZZ_LUADIR='"$(CURDIR)/lua"' -o $@ $< \
	  $(patsubst src/%.c,build/fuzz/obj/%.o,$(SRCS)) $(DEP_LIBS) $(LUA_LIBS) -lm

install: all install-files
	[ ! -f docs/ari-lua.1 ] || { install -d $(DESTDIR)$(MANDIR) && install -m 644 docs/ari-lua.1 $(DESTDIR)$(MANDIR)/ari-lua.1; }

# What LuaRocks' make backend calls (rockspec/): LuaRocks' dirs, no man page.
install-rock: all install-files

install-files: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LUADIR)/ari $(DESTDIR)$(CLUADIR)/ari
	install -m 755 $(BUILD)/bin/ari-lua $(DESTDIR)$(BINDIR)/ari-lua
	install -m 755 $(BUILD)/ari/core.so $(DESTDIR)$(CLUADIR)/ari/core.so
	cd lua && find ari -type d -exec install -d $(DESTDIR)$(LUADIR)/{} \;
	cd lua && find ari -name '*.lua' -exec install -m 644 {} $(DESTDIR)$(LUADIR)/{} \;

uninstall:
	rm -rf $(DESTDIR)$(BINDIR)/ari-lua $(DESTDIR)$(LUADIR)/ari $(DESTDIR)$(CLUADIR)/ari $(DESTDIR)$(MANDIR)/ari-lua.1

# Installs the Debian packages that are missing (needs root): what building
# and running need; test-deps adds what only the tests need (the test
# targets above run it first).
deps:
	sh tools/deps.sh
test-deps:
	sh tools/deps.sh --test

# Benchmarks (bench/run.lua): writes bench/results.md; BENCH_QUICK=1 for a smoke run.
# BENCH_SECTIONS="real node" runs only those parts (json dispatch flow memory
# real node profile) and replaces only them in bench/results.md.  real needs
# ../shared/asterisk, node needs node and npm (bench/node); each prints a
# skip note where its tools are missing.
bench: all
	lua5.4 bench/run.lua $(BENCH_SECTIONS)

# The first quick-start command's last step: an example app against the
# built-in simulated Asterisk.
demo: all
	./ari-lua --sim examples/hello.lua

clean:
	rm -rf build ari-lua
