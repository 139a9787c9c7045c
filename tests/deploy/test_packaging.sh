#!/bin/sh
# make install (PREFIX, DESTDIR) and make deb: the staged files, the unit
# and config pointing at the installed paths, the .deb's contents and
# Depends, and the BoringSSL directory of another architecture (arm64)
# resolved from DEB_HOST_ARCH / DEB_HOST_MULTIARCH rather than hard-coded.
# shellcheck source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
cd "$REPO" || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -x build/mxtls ] || [ ! -x build/mxtls-fetch ]; then
	fail "build/mxtls and build/mxtls-fetch are built (make all)"
	finish
	exit 1
fi

# ---- make install
D=$tmp/root
if make --no-print-directory -s install DESTDIR="$D" >"$tmp/install.out" 2>&1; then
	ok "make install DESTDIR=... (PREFIX=/usr/local)"
else
	fail "make install DESTDIR=..." "$(tail -n 5 "$tmp/install.out")"
fi
for f in usr/local/bin/mxtls usr/local/bin/mxtls-fetch usr/local/sbin/mxtls-redirect \
	usr/local/share/man/man8/mxtls.8 usr/local/share/mxtls/ca-certificates.crt \
	usr/local/lib/systemd/system/mxtls.service usr/local/lib/systemd/system/mxtls-redirect.service \
	usr/local/lib/sysusers.d/mxtls.conf etc/mxtls/mxtls.ini \
	usr/local/share/doc/mxtls/mxtls.example.ini usr/local/share/doc/mxtls/LICENSE; do
	check "make install: /$f" test -s "$D/$f"
done
check "make install: the binaries are executable" test -x "$D/usr/local/bin/mxtls"
check "make install: the installed mxtls runs (--version)" "$D/usr/local/bin/mxtls" --version
check "make install: the man page is readable with man" sh -c \
	"MANWIDTH=80 man -l '$D/usr/local/share/man/man8/mxtls.8' 2>/dev/null | grep -q '^NAME'"
# An administrator's config survives a second install.
echo "; mine" >>"$D/etc/mxtls/mxtls.ini"
make --no-print-directory -s install DESTDIR="$D" >/dev/null 2>&1
check "make install again: /etc/mxtls/mxtls.ini is not overwritten" grep -q '^; mine' "$D/etc/mxtls/mxtls.ini"

# PREFIX moves the paths the unit and the config name.
P=$tmp/prefix
make --no-print-directory -s install DESTDIR="$P" PREFIX=/opt/mxtls >/dev/null 2>&1
check "PREFIX=/opt/mxtls: the unit starts /opt/mxtls/bin/mxtls" \
	grep -q '^ExecStart=/opt/mxtls/bin/mxtls -c /etc/mxtls/mxtls.ini$' "$P/opt/mxtls/lib/systemd/system/mxtls.service"
check "PREFIX=/opt/mxtls: the config's CA bundle is /opt/mxtls/share/mxtls/" \
	grep -q '^ca_bundle = /opt/mxtls/share/mxtls/ca-certificates.crt$' "$P/etc/mxtls/mxtls.ini"
check "PREFIX=/opt/mxtls: the installed config passes mxtls -t (with the CA bundle in place)" sh -c \
	"sed 's|/opt/mxtls/|$P/opt/mxtls/|; s|^state_dir = .*|state_dir = $tmp/state|' '$P/etc/mxtls/mxtls.ini' >'$tmp/t.ini' && build/mxtls -t -c '$tmp/t.ini'"

# ---- make deb
if command -v dpkg-deb >/dev/null 2>&1 && command -v dpkg-shlibdeps >/dev/null 2>&1; then
	if make --no-print-directory -s deb >"$tmp/deb.out" 2>&1; then
		ok "make deb"
	else
		fail "make deb" "$(tail -n 5 "$tmp/deb.out")"
	fi
	version=$(sed -n 's/^VERSION *= *//p' Makefile)
	arch=$(dpkg --print-architecture)
	deb=build/mxtls_${version}_$arch.deb
	check "make deb: $deb" test -s "$deb"
	dpkg-deb -c "$deb" 2>/dev/null | awk '{print $6}' >"$tmp/list"
	for f in ./usr/bin/mxtls ./usr/bin/mxtls-fetch ./usr/sbin/mxtls-redirect \
		./usr/share/man/man8/mxtls.8 ./usr/share/mxtls/ca-certificates.crt \
		./lib/systemd/system/mxtls.service ./usr/lib/sysusers.d/mxtls.conf \
		./etc/mxtls/mxtls.ini; do
		check "dpkg-deb -c lists $f" grep -qxF "$f" "$tmp/list"
	done
	check "the .deb's unit starts /usr/bin/mxtls" sh -c \
		"dpkg-deb --fsys-tarfile '$deb' | tar -xOf - ./lib/systemd/system/mxtls.service | grep -q '^ExecStart=/usr/bin/mxtls '"
	depends=$(dpkg-deb -f "$deb" Depends 2>/dev/null)
	for p in libc6 libev4 libunbound8 libevent-2.1-7 libidn2-0 libcurl3-gnutls android-libboringssl libsystemd0; do
		check "Depends names $p" sh -c "printf '%s\n' '$depends' | grep -q '\\b$p\\b'"
	done
	check "Version $version, Architecture $arch" sh -c \
		"[ \"\$(dpkg-deb -f '$deb' Version)\" = '$version' ] && [ \"\$(dpkg-deb -f '$deb' Architecture)\" = '$arch' ]"
	check "/etc/mxtls/mxtls.ini is a conffile" sh -c \
		"dpkg-deb --ctrl-tarfile '$deb' | tar -xOf - ./conffiles | grep -qx /etc/mxtls/mxtls.ini"
else
	note "dpkg-deb or dpkg-shlibdeps (dpkg-dev) missing: make deb not tested"
fi

# ---- the BoringSSL directory follows the target architecture
for a in DEB_HOST_ARCH=arm64 DEB_HOST_MULTIARCH=aarch64-linux-gnu; do
	check "make -n $a links /usr/lib/aarch64-linux-gnu/android" sh -c \
		"make --no-print-directory -n -B $a build/mxtls 2>/dev/null | grep -q -- '-L/usr/lib/aarch64-linux-gnu/android '"
done
check "the Makefile hard-codes no multiarch directory" sh -c "! grep -v '^#' Makefile | grep -n '/usr/lib/x86_64-linux-gnu'"
finish
