#!/bin/sh
# The Dockerfile, checked as far as it can be without a Docker engine:
#   - its stages are on debian:bookworm-slim, the runtime stage is last and
#     runs as a non-root user with EXPOSE, HEALTHCHECK, ENTRYPOINT and CMD;
#   - every package an `apt-get install` names exists in Debian 12
#     (apt-cache, on this Debian 12 machine), in every Dockerfile of the
#     repository; the build stage's list is deploy/install-deps.sh's;
#   - the build stage, emulated: the build context (the repository's files
#     less .dockerignore) copied into a scratch root, WORKDIR/COPY/RUN
#     replayed there (apt-get lines excepted: their packages must be
#     installed here), so `make` runs in a clean tree;
#   - the runtime stage's COPY sources exist after that build, the copied
#     programs find every shared library in the runtime stage's packages,
#     and the image's config passes `mxtls -t`;
#   - the HEALTHCHECK script against a stub admin endpoint.
# shellcheck source-path=SCRIPTDIR
set -u
. "$(dirname "$0")/lib.sh"

DF=$REPO/Dockerfile
tmp=$(mktemp -d)
pids=
cleanup() {
	for p in $pids; do
		kill "$p" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# One instruction a line: "STAGE<TAB>INSTRUCTION<TAB>ARGUMENTS", with the
# continuation lines joined and comment lines dropped (as Docker does).
parse() { # dockerfile
	awk '
	BEGIN { stage = "-"; n = 0 }
	/^[[:space:]]*#/ { next }
	{
		line = $0
		cont = sub(/\\[[:space:]]*$/, "", line)
		buf = buf line (cont ? " " : "")
		if (cont) next
		s = buf; buf = ""
		sub(/^[[:space:]]+/, "", s)
		if (s == "") next
		instr = toupper(s); sub(/[[:space:]].*/, "", instr)
		args = s; sub(/^[^[:space:]]+[[:space:]]*/, "", args)
		gsub(/[[:space:]]+/, " ", args)
		if (instr == "FROM") {
			stage = "stage" n++
			if (match(args, / [Aa][Ss] [^ ]+$/))
				stage = substr(args, RSTART + 4)
		}
		print stage "\t" instr "\t" args
	}' "$1"
}

# The packages of the `apt-get install` commands in RUN arguments (stdin).
apt_packages() {
	# shellcheck disable=SC2020 # each of the three becomes a newline
	tr '&;|' '\n\n\n' | awk '
	/apt-get/ && / install / {
		sub(/.* install /, "")
		for (i = 1; i <= NF; i++)
			if ($i !~ /^-/ && $i != "\\") print $i
	}'
}

[ -f "$DF" ] || { fail "Dockerfile exists"; finish; exit 1; }
parse "$DF" >"$tmp/df"

# ---- the shape of the Dockerfile ----
froms=$(awk -F '\t' '$2 == "FROM" { print $3 }' "$tmp/df")
bad=$(printf '%s\n' "$froms" | grep -v -E '^debian:bookworm-slim( AS [a-z]+)?$')
if [ -z "$bad" ]; then
	ok "every stage is FROM debian:bookworm-slim"
else
	fail "every stage is FROM debian:bookworm-slim" "$bad"
fi
stages=$(awk -F '\t' '$2 == "FROM" { print $1 }' "$tmp/df" | tr '\n' ' ')
case $stages in
"build "*" runtime ") ok "stages: build first, runtime last ($stages)" ;;
*) fail "stages: build first, runtime last" "$stages" ;;
esac
rt() { # instruction: its arguments in the runtime stage
	awk -F '\t' -v i="$1" '$1 == "runtime" && $2 == i { print $3 }' "$tmp/df"
}
user=$(rt USER | tail -n 1)
case $user in
"" | 0 | 0:* | root | root:*) fail "runtime runs as a non-root USER" "USER '$user'" ;;
*) ok "runtime runs as a non-root USER ($user)" ;;
esac
exposed=" $(rt EXPOSE | tr '\n' ' ') "
for p in 10025 9925; do
	case $exposed in
	*" $p "*) ok "EXPOSE $p" ;;
	*) fail "EXPOSE $p" "EXPOSE:$exposed" ;;
	esac
done
hc=$(rt HEALTHCHECK)
case $hc in
*"CMD "*mxtls-healthcheck*) ok "HEALTHCHECK runs mxtls-healthcheck" ;;
*) fail "HEALTHCHECK runs mxtls-healthcheck" "'$hc'" ;;
esac
# expect NAME GOT WANT
expect() {
	if [ "$2" = "$3" ]; then ok "$1"; else fail "$1" "got '$2'"; fi
}
expect 'ENTRYPOINT ["mxtls"]' "$(rt ENTRYPOINT)" '["mxtls"]'
expect 'CMD ["-c", "/etc/mxtls/mxtls.ini"]' "$(rt CMD)" '["-c", "/etc/mxtls/mxtls.ini"]'


# ---- every package exists in Debian 12 ----
codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
if [ "$codename" = bookworm ]; then
	ok "apt here is Debian 12's (bookworm)"
else
	fail "apt here is Debian 12's (bookworm)" "this is '${codename:-unknown}': package checks would not mean Debian 12"
fi
# apt-cache needs the package lists: install-deps.sh fetched them when it
# installed something; otherwise (a fresh machine) fetch them once.
if ! apt-cache show --no-all-versions gcc >/dev/null 2>&1; then
	if [ "$(id -u)" -eq 0 ]; then
		note "no apt package lists: apt-get update"
		apt-get update -q >/dev/null 2>&1 || note "apt-get update failed"
	fi
fi
exists_in_debian() {
	apt-cache show --no-all-versions "$1" 2>/dev/null | grep -q -x "Package: $1"
}
dockerfiles=$(cd "$REPO" && { git ls-files -co --exclude-standard 2>/dev/null || find . -type f; } |
	sed 's|^\./||' | grep -E '(^|/)Dockerfile$' | sort -u)
for f in $dockerfiles; do
	parse "$REPO/$f" | awk -F '\t' '$2 == "RUN" { print $1 "\t" $3 }' >"$tmp/runs"
	pkgs=$(cut -f 2 "$tmp/runs" | apt_packages | sort -u)
	if [ -z "$pkgs" ]; then
		note "$f installs no packages"
		continue
	fi
	missing=
	for p in $pkgs; do
		exists_in_debian "$p" || missing="$missing $p"
	done
	if [ -z "$missing" ]; then
		ok "$f: its $(echo "$pkgs" | wc -l) packages exist in Debian 12"
	else
		fail "$f: packages exist in Debian 12" "not found:$missing"
	fi
done

# ---- the build stage's packages are install-deps.sh's build list ----
want=$(sed -n '/^build="/,/"/p' "$REPO/deploy/install-deps.sh" | sed 's/^build="//; s/".*//' |
	tr ' ' '\n' | grep -v '^$' | sort -u)
awk -F '\t' '$1 == "build" && $2 == "RUN" { print $3 }' "$tmp/df" | apt_packages | sort -u >"$tmp/build-pkgs"
if [ -n "$want" ] && [ "$(cat "$tmp/build-pkgs")" = "$want" ]; then
	ok "build stage installs install-deps.sh's build list"
else
	fail "build stage installs install-deps.sh's build list" \
		"$(printf '%s\n' "$want" | diff - "$tmp/build-pkgs" | grep '^[<>]' | tr '\n' ' ')"
fi
notinst=
while read -r p; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || notinst="$notinst $p"
done <"$tmp/build-pkgs"
if [ -z "$notinst" ]; then
	ok "the build stage's packages are installed here (the emulation uses them)"
else
	fail "the build stage's packages are installed here" "missing:$notinst (sh deploy/install-deps.sh build)"
fi

# ---- the build context: the repository's files less .dockerignore ----
ctx=$tmp/ctx
mkdir -p "$ctx"
ignored() { # path: is it excluded by .dockerignore?
	[ -f "$REPO/.dockerignore" ] || return 1
	while IFS= read -r pat; do
		case $pat in '' | '#'*) continue ;; esac
		pat=${pat#/}
		pat=${pat%/}
		# shellcheck disable=SC2254 # the pattern is a glob on purpose
		case $1 in
		$pat | $pat/*) return 0 ;;
		esac
	done <"$REPO/.dockerignore"
	return 1
}
unsupported=$(grep -v -E '^[[:space:]]*(#|$)' "$REPO/.dockerignore" 2>/dev/null | grep -E '^!|\*\*')
if [ -z "$unsupported" ]; then
	ok ".dockerignore uses only patterns this test applies"
else
	fail ".dockerignore uses only patterns this test applies" "$unsupported"
fi
(cd "$REPO" && git ls-files -co --exclude-standard) >"$tmp/files" 2>/dev/null ||
	(cd "$REPO" && find . -path ./build -prune -o -path ./.git -prune -o -type f -print | sed 's|^\./||') >"$tmp/files"
while IFS= read -r f; do
	[ -e "$REPO/$f" ] || continue # deleted in the work tree
	ignored "$f" && continue
	mkdir -p "$ctx/$(dirname "$f")"
	cp -p "$REPO/$f" "$ctx/$f"
done <"$tmp/files"
if [ -f "$ctx/Makefile" ]; then
	ok "build context holds the Makefile ($(wc -l <"$tmp/files") files listed)"
else
	fail "build context holds the Makefile"
fi

# ---- replay a stage: WORKDIR, COPY from the context, RUN ----
# Container paths live under a scratch root per stage: $tmp/root-STAGE.
replay() { # stage
	stage=$1
	root=$tmp/root-$stage
	mkdir -p "$root"
	wd=/
	awk -F '\t' -v s="$stage" '$1 == s && $2 != "FROM" { print $2 "\t" $3 }' "$tmp/df" >"$tmp/steps-$stage"
	while IFS="$(printf '\t')" read -r instr args; do
		case $instr in
		WORKDIR)
			case $args in /*) wd=$args ;; *) wd=$wd/$args ;; esac
			mkdir -p "$root$wd"
			;;
		COPY)
			case $args in --from=*) continue ;; esac
			# shellcheck disable=SC2046 # split the sources and the target
			set -- $(printf '%s\n' "$args" | sed 's/--[a-z]*=[^ ]* //g')
			eval "dst=\${$#}"
			# shellcheck disable=SC2154 # dst is set by the eval
			case $dst in /*) ;; *) dst=$wd/$dst ;; esac
			while [ $# -gt 1 ]; do
				if [ "$1" = . ]; then
					cp -pR "$ctx/." "$root$dst/"
				else
					mkdir -p "$root$(dirname "$dst")"
					cp -pR "$ctx/$1" "$root$dst" || return 1
				fi
				shift
			done
			;;
		RUN)
			case $args in *apt-get*) continue ;; esac
			note "RUN $args   (in $wd)"
			(cd "$root$wd" && sh -c "$args") >"$tmp/run-$stage.log" 2>&1 || {
				tail -n 30 "$tmp/run-$stage.log"
				return 1
			}
			;;
		esac
	done <"$tmp/steps-$stage"
}
if replay build; then
	ok "build stage: RUN commands succeed in a clean copy of the context"
else
	fail "build stage: RUN commands succeed in a clean copy of the context"
fi

# ---- the runtime stage's COPY sources, and a runtime root to look at ----
rtroot=$tmp/rt
mkdir -p "$rtroot"
rt COPY >"$tmp/copies"
copied_bins=
while IFS= read -r args; do
	from=
	case $args in --from=*) from=${args#--from=}; from=${from%% *} ;; esac
	# shellcheck disable=SC2046
	set -- $(printf '%s\n' "$args" | sed 's/--[a-z]*=[^ ]* //g')
	eval "dst=\${$#}"
	while [ $# -gt 1 ]; do
		if [ -n "$from" ]; then
			src=$tmp/root-$from$1
		else
			src=$ctx/$1
		fi
		case $dst in
		*/) target=$rtroot$dst$(basename "$1") ;;
		*) target=$rtroot$dst ;;
		esac
		if [ -e "$src" ]; then
			ok "runtime COPY ${from:+--from=$from }$1 exists"
			mkdir -p "$(dirname "$target")"
			cp -p "$src" "$target"
			[ -n "$from" ] && copied_bins="$copied_bins $target"
		else
			fail "runtime COPY ${from:+--from=$from }$1 exists" "not there after the build"
		fi
		shift
	done
done <"$tmp/copies"

# Every shared library of the copied programs comes from a runtime package,
# a package they depend on, or the base image (Priority: required).
rt_pkgs=$(rt RUN | apt_packages)
# shellcheck disable=SC2086
closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
	--no-breaks --no-replaces --no-enhances $rt_pkgs 2>/dev/null | grep -v '^ ' | sort -u)
owner() { # a library path: its Debian package
	for c in "$1" "$(readlink -f "$1")" "/usr${1#/usr}" "${1#/usr}"; do
		o=$(dpkg -S "$c" 2>/dev/null | head -n 1 | cut -d: -f1) && [ -n "$o" ] && {
			echo "$o"
			return
		}
	done
}
for b in $copied_bins; do
	name=$(basename "$b")
	if ! libs=$(ldd "$b" 2>&1); then
		fail "$name: ldd" "$libs"
		continue
	fi
	if printf '%s\n' "$libs" | grep -q 'not found'; then
		fail "$name: every shared library resolves" "$(printf '%s\n' "$libs" | grep 'not found')"
		continue
	fi
	bad=
	for lib in $(printf '%s\n' "$libs" | awk '/=> \// { print $3 } /^[[:space:]]*\/[^ ]* \(/ { print $1 }'); do
		pkg=$(owner "$lib")
		pkg=${pkg%%:*}
		[ -n "$pkg" ] || { bad="$bad $lib(no package)"; continue; }
		printf '%s\n' "$closure" | grep -q -x "$pkg" && continue
		apt-cache show --no-all-versions "$pkg" 2>/dev/null | grep -q -x 'Priority: required' && continue
		bad="$bad $lib($pkg)"
	done
	if [ -z "$bad" ]; then
		ok "$name: its shared libraries come with the runtime stage's packages"
	else
		fail "$name: its shared libraries come with the runtime stage's packages" "not installed there:$bad"
	fi
done

# The image's config, with its absolute paths moved into the runtime root.
ini=$rtroot/etc/mxtls/mxtls.ini
mxtls=$rtroot/usr/local/bin/mxtls
if [ -f "$ini" ] && [ -x "$mxtls" ]; then
	sed "s|= /|= $rtroot/|" "$ini" >"$tmp/image.ini"
	check "the image's /etc/mxtls/mxtls.ini passes mxtls -t" "$mxtls" -t -c "$tmp/image.ini"
else
	fail "the image's /etc/mxtls/mxtls.ini passes mxtls -t" "no config or no mxtls in the runtime root"
fi

# ---- the HEALTHCHECK script ----
hcs=$REPO/deploy/healthcheck.sh
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
cat >"$tmp/admin.py" <<'EOF'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if self.path == "/healthz" else 503
        try:
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b"ok\n" if code == 200 else b"not ready\n")
        except OSError:
            pass  # the health check reads the status line only
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.timeout = 1
import time
end = time.monotonic() + 120
while time.monotonic() < end:
    s.handle_request()
EOF
"$PY" "$tmp/admin.py" >"$tmp/admin.port" 2>/dev/null &
pids="$pids $!"
i=0
while [ ! -s "$tmp/admin.port" ] && [ "$i" -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
aport=$(head -n 1 "$tmp/admin.port")
if [ -n "$aport" ]; then
	check "healthcheck: 200 on /healthz is healthy" bash "$hcs" http "127.0.0.1:$aport" /healthz
	if bash "$hcs" http "127.0.0.1:$aport" /readyz 2>/dev/null; then
		fail "healthcheck: 503 is unhealthy (exit 1)"
	else
		ok "healthcheck: 503 is unhealthy (exit 1)"
	fi
	check "healthcheck: tcp mode connects" bash "$hcs" tcp "127.0.0.1:$aport"
else
	fail "healthcheck: stub admin endpoint started"
fi
bash "$hcs" http 127.0.0.1:1 /healthz 2>/dev/null
rc=$?
expect "healthcheck: nothing listening is unhealthy (exit 1)" "$rc" 1

finish
