# mxtls — see README.md.  `make run` and `make test` install what is
# missing (Debian packages), build, then run or test.

CC      = cc
BSSL_INC = /usr/include/android
BSSL_LIB = /usr/lib/x86_64-linux-gnu/android
# Reply and log texts are cut to size on purpose: snprintf truncation is no bug.
WARN    = -Wall -Wextra -Werror -Wno-format-truncation
CFLAGS  = -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -Iproxy -Ipolicy -isystem $(BSSL_INC)
LDLIBS  = -L$(BSSL_LIB) -Wl,-rpath,$(BSSL_LIB) -lssl -lcrypto -lev -lcares -linih -lidn2 -lpthread
SAN     = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

PROXY_SRC  := $(wildcard proxy/*.c)
POLICY_SRC := $(filter-out policy/fetch.c,$(wildcard policy/*.c))
SRC        := $(PROXY_SRC) $(POLICY_SRC)
OBJ        := $(patsubst %.c,build/obj/%.o,$(SRC))
ASAN_OBJ   := $(patsubst %.c,build/asan/obj/%.o,$(SRC))
LIB_ASAN_OBJ := $(filter-out build/asan/obj/proxy/main.o,$(ASAN_OBJ))
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(patsubst tests/unit/%.c,build/asan/%,$(UNIT_SRC))

.PHONY: all run test unit integration deps deps-test check-deps bench fuzz fuzz-regress clean

all: build/mxtls build/mxtls-fetch

build/mxtls: $(OBJ)
	$(CC) -o $@ $(OBJ) $(LDLIBS)

build/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# The fetcher links libcurl and never BoringSSL (SPEC.md section 2): it is
# built without the BoringSSL include path and libraries.
FETCH_SRC := policy/fetch.c policy/fetchproto.c
build/mxtls-fetch: $(FETCH_SRC) policy/fetchproto.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -Ipolicy -o $@ $(FETCH_SRC) -lcurl

build/asan/mxtls-fetch: $(FETCH_SRC) policy/fetchproto.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O1 -g $(WARN) $(SAN) -Ipolicy -o $@ $(FETCH_SRC) -lcurl

# The same daemon under AddressSanitizer + UBSan, used by the integration tests.
build/asan/mxtls: $(ASAN_OBJ)
	$(CC) $(SAN) -o $@ $(ASAN_OBJ) $(LDLIBS)

build/asan/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -O1 $(SAN) -MMD -MP -c -o $@ $<

build/asan/test_%: tests/unit/test_%.c $(LIB_ASAN_OBJ) tests/unit/t.h
	$(CC) $(CFLAGS) -O1 $(SAN) -Itests/unit -o $@ $< $(LIB_ASAN_OBJ) $(LDLIBS)

-include $(OBJ:.o=.d) $(ASAN_OBJ:.o=.d)

deps:
	@sh deploy/install-deps.sh build

deps-test:
	@sh deploy/install-deps.sh test

run: deps
	@$(MAKE) --no-print-directory all
	./build/mxtls -c deploy/mxtls.example.ini

unit: $(UNIT_BIN)
	@sh tests/run.sh unit

integration: all build/asan/mxtls build/asan/mxtls-fetch
	@sh tests/run.sh integration

# The build on every CPU, then tests/run.sh runs the tests side by side.
test: deps-test
	@$(MAKE) --no-print-directory -j"$$(nproc)" all build/asan/mxtls build/asan/mxtls-fetch $(UNIT_BIN)
	@$(MAKE) --no-print-directory check-deps
	@sh tests/run.sh all

check-deps:
	@sh tests/check-deps.sh

# libFuzzer on every parser, FUZZ_SECONDS each; `make test` only replays
# the corpora (tests/fuzz/test_fuzz_regress.sh), so crashes stay fixed.
FUZZ_SECONDS ?= 10
fuzz: deps-test
	@sh tests/fuzz/run.sh $(FUZZ_SECONDS)

fuzz-regress:
	@sh tests/fuzz/test_fuzz_regress.sh

# Speed and memory against stunnel and Postfix (docs/bench.md); installs
# stunnel4 if missing.  Not part of `make test`.
bench: all
	@sh tests/bench/run.sh

clean:
	rm -rf build

# The container images with podman, no Docker or registry needed
# (deploy/container/build-image.sh), and a delivery through them: the image
# run alone, and the Kubernetes manifests under `podman kube play`
# (tests/deploy/test_image.sh).  Not part of `make test`: minutes, and
# podman.
image:
	@nice sh deploy/container/build-image.sh

test-image: image
	@MXTLS_TEST_IMAGE=1 sh tests/deploy/test_image.sh
