# shellcheck shell=sh disable=SC2034
# Shared by tests/deploy/test_*.sh (POSIX sh; sourced, not run).
# ok/fail print one "ok  NAME" / "FAIL NAME" line each; finish prints the
# "N passed, N failed" line that tests/run.sh adds up and sets the exit code.

passed=0
failed=0

ok() {
	echo "ok  $1"
	passed=$((passed + 1))
}

fail() { # name [why...]
	n=$1
	shift
	echo "FAIL $n${1:+: $*}"
	failed=$((failed + 1))
}

# check NAME COMMAND...: ok when COMMAND succeeds; else FAIL with its output.
check() {
	n=$1
	shift
	if out=$("$@" 2>&1); then
		ok "$n"
	else
		fail "$n" "$(printf '%s' "$out" | tail -n 5)"
	fi
}

note() {
	echo "# $*"
}

finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}

# The repository root (tests/deploy/../..).
REPO=$(cd "$(dirname "$0")/../.." && pwd)
