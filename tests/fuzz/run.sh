#!/bin/sh
# Fuzz every harness of tests/fuzz/ for a bounded time (`make fuzz`).
# Usage: tests/fuzz/run.sh [SECONDS] [NAME...]   (default 10 s, all)
#
# Builds build/fuzz/NAME (build.sh), then runs each with its seeds
# (tests/fuzz/corpus/NAME/, read only) and a working corpus
# (build/fuzz/corpus/NAME/, grows from run to run).  A crash, leak,
# timeout or broken invariant fails the harness: the reproducer is saved
# as build/fuzz/artifacts/NAME-crash-... ; copy it into
# tests/fuzz/corpus/NAME/ once fixed so test_fuzz_regress.sh keeps it
# fixed.  Prints "ok  NAME" / "FAIL NAME" and "N passed, N failed".
set -u
cd "$(dirname "$0")/../.." || exit 1
secs=${1:-10}
[ $# -gt 0 ] && shift
case $secs in
'' | *[!0-9]*) echo "usage: $0 [SECONDS] [NAME...]" >&2; exit 2 ;;
esac

names=$(sh tests/fuzz/build.sh "$@") || {
	echo "FAIL build (see the compiler output above)"
	echo "0 passed, 1 failed"
	exit 1
}
passed=0
failed=0
mkdir -p build/fuzz/artifacts build/fuzz/logs build/fuzz/tmp
for name in $names; do
	work=build/fuzz/corpus/$name
	log=build/fuzz/logs/$name.log
	mkdir -p "$work"
	TMPDIR=$PWD/build/fuzz/tmp ./build/fuzz/"$name" \
	    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
	    -max_len=65536 -print_final_stats=1 \
	    -artifact_prefix=build/fuzz/artifacts/"$name"- \
	    "$work" tests/fuzz/corpus/"$name" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
	if [ $rc -eq 0 ]; then
		echo "ok  $name (${runs:-?} runs in ${secs}s, cov ${cov:-?})"
		passed=$((passed + 1))
	else
		art=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" |
		    tail -n 1)
		echo "FAIL $name (exit $rc; reproducer ${art:-none}; log $log)"
		grep -E 'invariant broken|ERROR: |SUMMARY: ' "$log" | head -n 5 |
		    sed 's/^/    /'
		failed=$((failed + 1))
	fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
