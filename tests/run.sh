#!/bin/sh
# Run test programs and add up their closing "N passed, N failed" lines.
# Usage: run.sh unit|integration|all
set -u
cd "$(dirname "$0")/.."
what=${1:-all}
passed=0
failed=0
log=build/test-logs
mkdir -p "$log"

run_one() { # name command...
	name=$1
	shift
	out="$log/$name.out"
	"$@" >"$out" 2>&1
	rc=$?
	grep -E '^(ok  |FAIL)' "$out"
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
	if [ -z "$line" ]; then
		echo "FAIL $name (exit $rc, no result line; see $out)"
		tail -n 20 "$out"
		failed=$((failed + 1))
		return
	fi
	p=${line%% passed*}
	f=${line#*passed, }
	f=${f%% failed}
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL $name (exit $rc; see $out)"
		tail -n 20 "$out"
		f=1
	fi
	[ "$f" -ne 0 ] && grep -vE '^(ok  |FAIL)' "$out" | tail -n 40
	passed=$((passed + p))
	failed=$((failed + f))
}

if [ "$what" = unit ] || [ "$what" = all ]; then
	for t in build/asan/test_*; do
		[ -x "$t" ] || continue
		run_one "$(basename "$t")" "$t"
	done
fi
if [ "$what" = integration ] || [ "$what" = all ]; then
	for t in tests/fuzz/test_*.sh tests/integration/test_*.sh tests/deploy/test_*.sh; do
		[ -e "$t" ] || continue
		run_one "$(basename "$t" .sh)" sh "$t"
	done
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
