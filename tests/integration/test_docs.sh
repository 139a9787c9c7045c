#!/bin/sh
# The documentation keeps up with the code:
#   - every key the parser of proxy/config.c knows (its keydefs table:
#     lines starting "{ K_SECTION, "key",") has
#     an entry in docs/mxtls.8 under its section: a new key without
#     documentation fails here;
#   - the man page renders without warnings;
#   - the usage texts of proxy/usage.c are in the man page's SYNOPSIS;
#   - no file cites the design documents that were never part of the
#     repository (tests/check-deps.sh), and every attack id a test or
#     comment uses (A-01 ...) is listed in docs/security.md.
IT_TIMEOUT=${IT_TIMEOUT:-30}
. "$(dirname "$0")/lib.sh"
it_setup

MAN=docs/mxtls.8

# section:key of every key the parser accepts.
sed -n 's/^[[:space:]]*{ K_\([A-Z]*\), "\([a-z_0-9]*\)",.*/\1:\2/p' proxy/config.c |
	tr '[:upper:]' '[:lower:]' | sort -u >"$W/keys.config"
# section:key of every entry of the man page: the tag line after .TP, under
# a .SS "[section ...]" heading; a tag starts with one key or several
# ("\fBa\fR, \fBb\fR"), then its values.
awk '
/^\.SS / {
	sect = ""
	if (match($0, /\[[a-z]+/)) sect = substr($0, RSTART + 1, RLENGTH - 1)
	next
}
/^\.TP/ { tag = 1; next }
tag == 1 {
	tag = 0
	if (sect == "") next
	s = $0
	while (match(s, /^\\fB[a-z_0-9]+\\fR/)) {
		k = substr(s, RSTART + 3, RLENGTH - 6)
		print sect ":" k
		s = substr(s, RSTART + RLENGTH)
		sub(/^, /, "", s)
	}
}' "$MAN" | sort -u >"$W/keys.man"

check "the key table of proxy/config.c was read (over 60 keys)" \
	sh -c "[ \$(wc -l <'$W/keys.config') -gt 60 ] || cat '$W/keys.config'"
check "every config key of proxy/config.c is documented in docs/mxtls.8 under its section" \
	sh -c "missing=\$(comm -23 '$W/keys.config' '$W/keys.man'); [ -z \"\$missing\" ] || { echo \"undocumented: \$missing\"; exit 1; }"
note "documented but not (yet) in the parser: $(comm -13 "$W/keys.config" "$W/keys.man" | tr '\n' ' ')"

check "docs/mxtls.8 renders without warnings (groff -man -ww)" sh -c \
	"out=\$(groff -man -ww -z '$MAN' 2>&1); [ -z \"\$out\" ] || { echo \"\$out\"; exit 1; }"
check "man -l docs/mxtls.8 reads it" sh -c "MANWIDTH=80 man -l '$MAN' 2>/dev/null | grep -q 'CONFIGURATION'"

# Every command of `mxtls -h` is in the man page's SYNOPSIS and COMMANDS.
for c in explain state keygen sign-policy; do
	check "docs/mxtls.8 documents mxtls $c" sh -c \
		"MANWIDTH=200 man -l '$MAN' 2>/dev/null | sed -n '/^SYNOPSIS/,/^DESCRIPTION/p' | grep -q 'mxtls.* $c'"
done

# ---------------------------------------------------------------- citations

# The repository stands on its own: docs/ holds what the code cites.
check "no file cites documents outside the repository (tests/check-deps.sh)" sh tests/check-deps.sh

# Attack ids (A-01 ... I-05) used anywhere must be defined in docs/security.md.
git ls-files 2>/dev/null | grep -v '^docs/security.md$' |
	xargs grep -ohE '\b[A-I]-[0-9]{2}\b' 2>/dev/null | sort -u >"$W/ids.used"
grep -oE '^\| *[A-I]-[0-9]{2} ' docs/security.md | tr -d '| ' | sort -u >"$W/ids.defined"
check "the attack ids used in the repository were found (over 50)" sh -c "[ \$(wc -l <'$W/ids.used') -gt 50 ]"
check "every attack id used is defined in docs/security.md" \
	sh -c "missing=\$(comm -23 '$W/ids.used' '$W/ids.defined'); [ -z \"\$missing\" ] || { echo \"not in docs/security.md: \$missing\"; exit 1; }"
# And each test docs/security.md names exists.
# The script is for sh -c: its $variables are its own.
# shellcheck disable=SC2016
check "every test script docs/security.md names exists" sh -c '
	for t in $(grep -oE "(tests/[a-z_/]+\.(sh|c|py)|test_[a-z_]+\.sh)" docs/security.md | sort -u); do
		case $t in tests/*) f=$t ;; *) f=tests/integration/$t ;; esac
		[ -e "$f" ] || { echo "missing: $f"; exit 1; }
	done'
finish
