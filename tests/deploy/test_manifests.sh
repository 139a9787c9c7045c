#!/bin/sh
# deploy/ beyond the redirect: the Kubernetes manifests and docker-compose
# file parse and carry the security settings (tests/deploy/check_manifests.py),
# the mxtls configs they ship pass `mxtls -t`, `kubectl kustomize` and
# `docker-compose config` accept them where those tools are installed, the
# systemd units pass `systemd-analyze verify` and keep their sandbox, and
# every shell script of deploy/ and tests/deploy/ passes shellcheck.
# shellcheck source-path=SCRIPTDIR
set -u
. "$(dirname "$0")/lib.sh"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

# ---- YAML: a python3 with PyYAML (Debian's python3-yaml) ----
PY=
for c in /usr/bin/python3 python3; do
	if "$c" -c 'import yaml' 2>/dev/null; then
		PY=$c
		break
	fi
done
if [ -z "$PY" ]; then
	fail "python3 with PyYAML installed (apt-get install python3-yaml)"
else
	"$PY" "$REPO/tests/deploy/check_manifests.py" "$REPO" "$tmp" >"$tmp/py.out" 2>&1
	rc=$?
	while IFS= read -r line; do
		case $line in
		"ok  "*) echo "$line"; passed=$((passed + 1)) ;;
		"FAIL "*) echo "$line"; failed=$((failed + 1)) ;;
		*) echo "$line" ;;
		esac
	done <"$tmp/py.out"
	[ "$rc" -eq 0 ] || fail "check_manifests.py ran to its end" "exit $rc"
fi

# ---- the configs pass mxtls -t ----
MXTLS=$REPO/build/mxtls
config_ok() { # name file
	sed -e "s|= /usr/share/mxtls/|= $REPO/ca-bundles/|" \
		-e "s|= /usr/local/share/mxtls/|= $REPO/ca-bundles/|" "$2" >"$tmp/t.ini"
	check "$1 passes mxtls -t" "$MXTLS" -t -c "$tmp/t.ini"
}
if [ -x "$MXTLS" ]; then
	for f in kubernetes compose; do
		if [ -s "$tmp/$f.ini" ]; then
			config_ok "$f mxtls.ini" "$tmp/$f.ini"
		else
			fail "$f mxtls.ini found"
		fi
	done
	config_ok "deploy/container/mxtls.ini (the image's default)" "$REPO/deploy/container/mxtls.ini"
	config_ok "deploy/systemd/mxtls.ini" "$REPO/deploy/systemd/mxtls.ini"
	# The same in transparent mode, as README.md says to change it.
	sed -e 's/^listen = 127.0.0.1:10025$/mode = transparent\nlisten = 127.0.0.1:10026/' \
		"$REPO/deploy/systemd/mxtls.ini" >"$tmp/transparent.ini"
	if grep -q '^mode = transparent$' "$tmp/transparent.ini"; then
		config_ok "deploy/systemd/mxtls.ini made transparent" "$tmp/transparent.ini"
	else
		fail "deploy/systemd/mxtls.ini has the line listen = 127.0.0.1:10025"
	fi
else
	fail "build/mxtls is built (make), to check the configs"
fi

# ---- the tools of the targets, where installed ----
if command -v kubectl >/dev/null 2>&1; then
	check "kubectl kustomize deploy/kubernetes" kubectl kustomize "$REPO/deploy/kubernetes"
else
	note "kubectl not installed: kustomize build not checked"
fi
if command -v docker-compose >/dev/null 2>&1; then
	check "docker-compose config accepts deploy/docker-compose.yml" \
		docker-compose -f "$REPO/deploy/docker-compose.yml" config -q
else
	note "docker-compose not installed: compose schema not checked"
fi

# ---- systemd ----
SD=$REPO/deploy/systemd
unit=$SD/mxtls.service
has() { # file line: the unit has this exact line
	grep -q -x -F -- "$2" "$1"
}
# shellcheck disable=SC2016 # $MAINPID is the unit's, not ours
for l in 'Type=notify' 'SyslogFacility=mail' 'User=mxtls' 'StateDirectory=mxtls' \
	'ExecStart=/usr/local/bin/mxtls -c /etc/mxtls/mxtls.ini' \
	'ExecReload=/bin/kill -HUP $MAINPID' 'ProtectSystem=strict' \
	'ProtectHome=yes' 'PrivateTmp=yes' 'NoNewPrivileges=yes' \
	'CapabilityBoundingSet=' 'AmbientCapabilities=' \
	'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' \
	'SystemCallFilter=@system-service'; do
	if has "$unit" "$l"; then ok "mxtls.service: $l"; else fail "mxtls.service: $l"; fi
done
for l in 'AmbientCapabilities=CAP_NET_ADMIN' 'CapabilityBoundingSet=CAP_NET_ADMIN'; do
	if has "$SD/upstream-mark.conf" "$l"; then
		ok "upstream-mark.conf drop-in: $l"
	else
		fail "upstream-mark.conf drop-in: $l"
	fi
done
if command -v systemd-analyze >/dev/null 2>&1; then
	# verify wants the programs to exist: point the units at this tree's.
	mkdir -p "$tmp/units"
	for u in "$SD"/*.service; do
		sed -e "s|/usr/local/bin/mxtls |$MXTLS |g" \
			-e "s|/usr/local/sbin/mxtls-redirect |$REPO/deploy/redirect.sh |g" \
			"$u" >"$tmp/units/$(basename "$u")"
	done
	# Documentation=man:mxtls(8): verify runs man, which finds ours here.
	mkdir -p "$tmp/man/man8"
	cp "$REPO/docs/mxtls.8" "$tmp/man/man8/"
	for u in "$tmp"/units/*.service; do
		n=$(basename "$u")
		if out=$(MANPATH="$tmp/man:" systemd-analyze verify "$u" 2>&1) && [ -z "$out" ]; then
			ok "systemd-analyze verify $n"
		else
			fail "systemd-analyze verify $n" "$out"
		fi
	done
	# The sandbox, as systemd scores it (0 best, 10 worst): at most 2.5.
	if out=$(systemd-analyze security --offline=true --threshold=25 "$tmp/units/mxtls.service" 2>&1); then
		level=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
		ok "mxtls.service: systemd-analyze security exposure ${level:-?} <= 2.5"
	else
		fail "mxtls.service: systemd-analyze security exposure <= 2.5" "$(printf '%s\n' "$out" | tail -n 1)"
	fi
else
	note "systemd-analyze not installed: units not verified"
fi
if command -v systemd-sysusers >/dev/null 2>&1; then
	mkdir -p "$tmp/sysroot/etc"
	# shellcheck disable=SC2016 # the inner sh expands them
	check "mxtls.sysusers creates user mxtls (systemd-sysusers --root)" \
		sh -c 'systemd-sysusers --root="$1" "$2" && grep -q "^mxtls:x:10025:10025:" "$1/etc/passwd"' \
		sh "$tmp/sysroot" "$SD/mxtls.sysusers"
fi

# ---- shellcheck on every shell script of deploy/ and tests/deploy/ ----
if command -v shellcheck >/dev/null 2>&1; then
	for f in $(cd "$REPO" && find deploy tests/deploy -name '*.sh' -type f | sort); do
		case $f in deploy/install-deps.sh) continue ;; esac # not this test's file
		# shellcheck disable=SC2016 # the inner sh expands them
		check "shellcheck $f" sh -c 'cd "$1" && shellcheck -x "$2"' sh "$REPO" "$f"
	done
else
	fail "shellcheck installed (apt-get install shellcheck)"
fi

finish
