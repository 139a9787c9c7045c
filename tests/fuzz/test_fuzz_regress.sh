#!/bin/sh
# `make test`: every fuzz harness once over its corpus, no new fuzzing,
# so that seeds and the crash reproducers kept in tests/fuzz/corpus/NAME/
# stay fixed.  Prints "ok  NAME" / "FAIL NAME" and "N passed, N failed".
set -u
cd "$(dirname "$0")/../.." || exit 1

names=$(sh tests/fuzz/build.sh "$@") || {
	echo "FAIL fuzz build (clang with libFuzzer needed: apt-get install clang)"
	echo "0 passed, 1 failed"
	exit 1
}
passed=0
failed=0
mkdir -p build/fuzz/logs build/fuzz/tmp
for name in $names; do
	dir=tests/fuzz/corpus/$name
	log=build/fuzz/logs/$name.regress.log
	n=$(find "$dir" -type f | wc -l)
	# -runs=0: execute the corpus, do not mutate; each file in full.
	TMPDIR=$PWD/build/fuzz/tmp ./build/fuzz/"$name" -runs=0 \
	    -timeout=10 -rss_limit_mb=2048 -max_len=4194304 \
	    -artifact_prefix=build/fuzz/tmp/"$name"- "$dir" >"$log" 2>&1
	rc=$?
	if [ $rc -eq 0 ] && [ "$n" -gt 0 ]; then
		echo "ok  I-05 fuzz_$name: no crash, no sanitizer report, invariants hold ($n inputs)"
		passed=$((passed + 1))
	else
		echo "FAIL I-05 fuzz_$name (exit $rc, $n inputs; log $log)"
		# Which inputs: each file alone (a run stops at its first crash).
		for f in "$dir"/*; do
			[ -f "$f" ] || continue
			TMPDIR=$PWD/build/fuzz/tmp ./build/fuzz/"$name" \
			    -timeout=10 -rss_limit_mb=2048 \
			    -artifact_prefix=build/fuzz/tmp/"$name"- "$f" \
			    >"$log.1" 2>&1 && continue
			echo "    $f:"
			grep -E 'invariant broken|ERROR: ' "$log.1" | head -n 2 |
			    sed 's/^/      /'
		done
		rm -f "$log.1"
		failed=$((failed + 1))
	fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
