# mxtls — see README.md.  `make run` and `make test` install what is
# missing (Debian packages), build, then run or test.

# The one place the version is written: mxtls -V, mxtls-fetch -V, the .deb.
VERSION = 0.1.0
CC      = cc
# Debian's BoringSSL lives in the multiarch directory of the target (amd64:
# x86_64-linux-gnu, arm64: aarch64-linux-gnu).  A cross build names the
# Debian architecture (make DEB_HOST_ARCH=arm64 CC=aarch64-linux-gnu-gcc)
# or the directory itself (DEB_HOST_MULTIARCH=aarch64-linux-gnu); without
# dpkg-dev, the compiler says.
DEB_HOST_ARCH ?= $(shell dpkg-architecture -qDEB_HOST_ARCH 2>/dev/null || dpkg --print-architecture)
DEB_HOST_MULTIARCH ?= $(shell dpkg-architecture -a$(DEB_HOST_ARCH) -qDEB_HOST_MULTIARCH 2>/dev/null || $(CC) -print-multiarch)
BSSL_INC = /usr/include/android
BSSL_LIB = /usr/lib/$(DEB_HOST_MULTIARCH)/android
# Reply and log texts are cut to size on purpose: snprintf truncation is no bug.
WARN    = -Wall -Wextra -Werror -Wno-format-truncation
DEFS    = -DMXTLS_VERSION='"$(VERSION)"'
CFLAGS  = -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) $(DEFS) -Iproxy -Ipolicy -isystem $(BSSL_INC)
# libev exports libevent-compatible event_* functions: libunbound's resolver
# thread must find the real libevent first, so it is named before libev
# (check-deps.sh checks the order in the binary).
LDLIBS  = -L$(BSSL_LIB) -Wl,-rpath,$(BSSL_LIB) -lssl -lcrypto \
	-Wl,--no-as-needed -levent -lunbound -lev -lidn2 -lpthread \
	-lz
# zlib gzips TLS reports (policy/tlsrptmsg.c), in mxtls: mxtls-fetch only
# posts the bytes it is given.
# sd_notify, for the daemon alone (unit tests and mxtls-fetch do without).
MXTLS_LIBS = -lsystemd
SAN     = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

PROXY_SRC  := $(wildcard proxy/*.c)
POLICY_SRC := $(filter-out policy/fetch.c,$(wildcard policy/*.c))
SRC        := $(PROXY_SRC) $(POLICY_SRC)
OBJ        := $(patsubst %.c,build/obj/%.o,$(SRC))
ASAN_OBJ   := $(patsubst %.c,build/asan/obj/%.o,$(SRC))
LIB_ASAN_OBJ := $(filter-out build/asan/obj/proxy/main.o,$(ASAN_OBJ))
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(patsubst tests/unit/%.c,build/asan/%,$(UNIT_SRC))

.PHONY: all run test unit integration deps deps-test check-deps bench bench-dane fuzz fuzz-regress clean install deb

all: build/mxtls build/mxtls-fetch

build/mxtls: $(OBJ)
	$(CC) -o $@ $(OBJ) $(LDLIBS) $(MXTLS_LIBS)

build/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# The fetcher links libcurl and never BoringSSL (libcurl brings OpenSSL's
# libcrypto, whose symbols BoringSSL would then serve in the same process;
# docs/security.md, "One TLS library per process"): it is built without the
# BoringSSL include path and libraries.
FETCH_SRC := policy/fetch.c policy/fetchproto.c
build/mxtls-fetch: $(FETCH_SRC) policy/fetchproto.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) $(DEFS) -Ipolicy -o $@ $(FETCH_SRC) -lcurl

build/asan/mxtls-fetch: $(FETCH_SRC) policy/fetchproto.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O1 -g $(WARN) $(DEFS) $(SAN) -Ipolicy -o $@ $(FETCH_SRC) -lcurl

# The same daemon under AddressSanitizer + UBSan, used by the integration tests.
build/asan/mxtls: $(ASAN_OBJ)
	$(CC) $(SAN) -o $@ $(ASAN_OBJ) $(LDLIBS) $(MXTLS_LIBS)

build/asan/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -O1 $(SAN) -MMD -MP -c -o $@ $<

build/asan/test_%: tests/unit/test_%.c $(LIB_ASAN_OBJ) $(wildcard tests/unit/*.h)
	$(CC) $(CFLAGS) -O1 $(SAN) -Itests/unit -o $@ $< $(LIB_ASAN_OBJ) $(LDLIBS)

# The session and the upstream without sockets: tests/unit/fake_*.c stand
# in for the modules below and, through --wrap, for the two functions that read a
# handshake; every other object is the real one, so a new proxy module is
# linked without a change here.
SESSION_FAKED := $(patsubst %,build/asan/obj/proxy/%.o,clock conn dns sts)
SESSION_OBJ   := $(filter-out $(SESSION_FAKED),$(LIB_ASAN_OBJ))
SESSION_FAKES := $(wildcard tests/unit/fake_*.c)
build/asan/test_session build/asan/test_upstream: build/asan/test_%: tests/unit/test_%.c $(SESSION_FAKES) $(SESSION_OBJ) $(wildcard tests/unit/*.h)
	$(CC) $(CFLAGS) -O1 $(SAN) -Itests/unit -o $@ $< $(SESSION_FAKES) $(SESSION_OBJ) \
		-Wl,--wrap=tls_facts_collect,--wrap=dane_verify $(LDLIBS)

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
	@$(MAKE) --no-print-directory bench-dane

# What DANE costs: W1/W2 with DNSSEC validation and a TLSA record against
# dnssec = off, on a signed test zone (docs/bench.md).
bench-dane: all
	@sh tests/bench/dane.sh

# ---- install, deb

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
MANDIR  ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share/mxtls
DOCDIR  ?= $(PREFIX)/share/doc/mxtls
SYSCONFDIR ?= /etc
# systemd reads units and sysusers.d from /usr/local/lib too.
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
# The shipped unit and config name /usr/local; they get the paths of this
# install instead.
SUBST = sed -e 's|/usr/local/bin/|$(BINDIR)/|g' -e 's|/usr/local/sbin/|$(SBINDIR)/|g' \
	-e 's|/usr/local/share/mxtls/|$(DATADIR)/|g' -e 's|/etc/mxtls/|$(SYSCONFDIR)/mxtls/|g'

# Binaries, man page, CA bundle, the systemd units and user, the example
# config (and /etc/mxtls/mxtls.ini, only where there is none yet: never
# overwrite an administrator's config).  DESTDIR stages it elsewhere.
install: all
	install -D -m 0755 build/mxtls $(DESTDIR)$(BINDIR)/mxtls
	install -D -m 0755 build/mxtls-fetch $(DESTDIR)$(BINDIR)/mxtls-fetch
	install -D -m 0755 deploy/redirect.sh $(DESTDIR)$(SBINDIR)/mxtls-redirect
	install -D -m 0644 docs/mxtls.8 $(DESTDIR)$(MANDIR)/man8/mxtls.8
	install -D -m 0644 ca-bundles/ca-certificates.crt $(DESTDIR)$(DATADIR)/ca-certificates.crt
	install -d -m 0755 $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(DOCDIR)
	$(SUBST) deploy/systemd/mxtls.service >$(DESTDIR)$(SYSTEMDUNITDIR)/mxtls.service
	$(SUBST) deploy/systemd/mxtls-redirect.service >$(DESTDIR)$(SYSTEMDUNITDIR)/mxtls-redirect.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/mxtls.service $(DESTDIR)$(SYSTEMDUNITDIR)/mxtls-redirect.service
	install -D -m 0644 deploy/systemd/mxtls.sysusers $(DESTDIR)$(SYSUSERSDIR)/mxtls.conf
	$(SUBST) deploy/systemd/mxtls.ini >$(DESTDIR)$(DOCDIR)/mxtls.ini
	install -m 0644 deploy/mxtls.example.ini README.md LICENSE docs/behaviour.md docs/security.md $(DESTDIR)$(DOCDIR)/
	chmod 0644 $(DESTDIR)$(DOCDIR)/mxtls.ini
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/mxtls
	[ -e $(DESTDIR)$(SYSCONFDIR)/mxtls/mxtls.ini ] || \
		install -m 0644 $(DESTDIR)$(DOCDIR)/mxtls.ini $(DESTDIR)$(SYSCONFDIR)/mxtls/mxtls.ini

# A .deb from a staged tree (dpkg-deb --build), for the architecture built
# for; Depends from the libraries the binaries link (dpkg-shlibdeps).
DEB      = build/mxtls_$(VERSION)_$(DEB_HOST_ARCH).deb
DEBROOT  = build/deb/root
deb: all
	rm -rf build/deb
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(DEBROOT) PREFIX=/usr \
		SYSTEMDUNITDIR=/lib/systemd/system SYSUSERSDIR=/usr/lib/sysusers.d
	mkdir -p build/deb/src/debian $(DEBROOT)/DEBIAN
	printf 'Source: mxtls\n\nPackage: mxtls\nArchitecture: any\n' >build/deb/src/debian/control
	depends=$$(cd build/deb/src && dpkg-shlibdeps -O -e $(CURDIR)/$(DEBROOT)/usr/bin/mxtls \
		-e $(CURDIR)/$(DEBROOT)/usr/bin/mxtls-fetch 2>/dev/null | sed -n 's/^shlibs:Depends=//p') && \
	[ -n "$$depends" ] && \
	sed -e 's/@VERSION@/$(VERSION)/' -e 's/@ARCH@/$(DEB_HOST_ARCH)/' \
		-e "s/@DEPENDS@/$$depends/" \
		-e "s/@SIZE@/$$(du -sk $(DEBROOT) | cut -f1)/" deploy/deb/control >$(DEBROOT)/DEBIAN/control
	install -m 0644 deploy/deb/conffiles $(DEBROOT)/DEBIAN/conffiles
	install -m 0755 deploy/deb/postinst $(DEBROOT)/DEBIAN/postinst
	dpkg-deb --root-owner-group --build $(DEBROOT) $(DEB)

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
