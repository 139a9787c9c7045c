#!/bin/sh
# Run test programs and add up their closing "N passed, N failed" lines.
# Usage: run.sh unit|integration|all [NAME...]   (NAME: test_relay, ...: only those)
#
# The unit tests, the fuzz regressions and the integration and deploy
# scripts run MXTLS_TEST_JOBS at a time (default: CPUs + 1), the longest
# first (build/test-durations: the last run's times; tests/durations until
# there is one).  Each script runs in a network namespace of its own (as
# root, with unshare): the fixed addresses and ports of one cannot meet
# those of another, nor those of anything else on the machine.  Without
# unshare they run one at a time.  A script's lines are printed together
# when it ends; then each one's duration, slowest first, and the totals.
set -u
cd "$(dirname "$0")/.." || exit 1
what=${1:-all}
[ $# -gt 0 ] && shift
log=build/test-logs
mkdir -p "$log"
rm -f "$log"/*.rc "$log"/*.pid "$log"/*.times

# A hung script must not hang `make test`: its own watchdog (lib.sh) should
# have stopped it long before this.
limit=${MXTLS_TEST_TIMEOUT:-1500}

if [ "$(id -u)" -eq 0 ] && unshare -n true 2>/dev/null; then
	isolate=yes
	jobs=${MXTLS_TEST_JOBS:-$(($(nproc 2>/dev/null || echo 1) + 1))}
else
	isolate=no
	jobs=1
	echo "# no private network namespaces here (they need root and unshare):" \
		"the scripts run one at a time"
fi

# The scripts start python3 hundreds of times: Debian's (a dependency, see
# deploy/install-deps.sh), not a version manager's shim that may come first
# in PATH and costs ten times the CPU per start.
if [ -x /usr/bin/python3 ]; then
	mkdir -p build/bin
	ln -sf /usr/bin/python3 build/bin/python3
	PATH=$PWD/build/bin:$PATH
	export PATH
fi

# --- the list of jobs: "NAME KIND PATH", longest first

list=$log/jobs
: >"$list"
want() { # NAME [NAMES...]: NAME is one of NAMES, or there are none
	_w=$1
	shift
	[ $# -eq 0 ] && return 0
	for _x; do [ "$_x" = "$_w" ] && return 0; done
	return 1
}
add() { # KIND PATH [NAMES...]
	_k=$1 _p=$2
	shift 2
	[ -e "$_p" ] || return 0
	_n=$(basename "$_p" .sh)
	# Unit and integration tests may share a name (test_sts).
	[ "$_k" = unit ] && _n=unit-$_n
	want "$_n" "$@" && echo "$_n $_k $_p" >>"$list"
}
if [ "$what" = unit ] || [ "$what" = all ]; then
	for t in build/asan/test_*; do
		[ -x "$t" ] && add unit "$t" "$@"
	done
fi
if [ "$what" = integration ] || [ "$what" = all ]; then
	for t in tests/fuzz/test_*.sh tests/integration/test_*.sh tests/deploy/test_*.sh; do
		add script "$t" "$@"
	done
fi

durations=build/test-durations
[ -s "$durations" ] || durations=tests/durations
[ -f "$durations" ] || durations=/dev/null
# A script with no recorded time goes first: it may be a long one.
awk 'FILENAME == ARGV[1] { d[$1] = $2; next } { print ($1 in d ? d[$1] : 100000), $0 }' \
	"$durations" "$list" | sort -k1,1nr -k2,2 | cut -d' ' -f2- >"$list.sorted"
mv "$list.sorted" "$list"

# --- running one: the output to $log/NAME.out, then "RC MS CPU" to NAME.rc

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# timeout(1) puts the job in a process group of its own and, sent TERM,
# passes it on to the whole group: interrupted, run.sh stops them that way.
run_job() { # NAME KIND PATH
	_t0=$(now_ms)
	_n=$1
	# lo is down in a new namespace; 127.0.0.0/8 and ::1 come with it.
	# shellcheck disable=SC2016 # the inner sh expands $1
	case $2-$isolate in
	unit-*) set -- "$3" ;;
	*-yes) set -- unshare -n sh -c 'ip link set lo up && exec sh "$1"' sh "$3" ;;
	*) set -- sh "$3" ;;
	esac
	timeout -k 10 "$limit" "$@" >"$log/$_n.out" 2>&1 </dev/null &
	echo $! >"$log/$_n.pid"
	wait $!
	_rc=$?
	# CPU: user + system seconds of what this subshell waited for.
	# (times itself, not in a $(...) subshell that waited for nothing)
	times >"$log/$_n.times"
	_cpu=$(awk 'NR == 2 { split($1, u, "m"); split($2, s, "m"); printf "%.1f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$log/$_n.times")
	echo "$_rc $(($(now_ms) - _t0)) $_cpu" >"$log/$_n.rc.tmp"
	mv "$log/$_n.rc.tmp" "$log/$_n.rc"
}

# --- reporting one: its ok/FAIL lines, and the output around a failure

passed=0
failed=0
report() { # NAME
	_o=$log/$1.out
	read -r _rc _ms _cpu <"$log/$1.rc"
	echo "$1 $((_ms / 1000)) $_cpu" >>"$log/durations.new"
	echo "# $1 ($((_ms / 1000)) s, CPU $_cpu s)"
	grep -E '^(ok  |FAIL)' "$_o"
	_l=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$_o" | tail -n 1)
	if [ -z "$_l" ]; then
		echo "FAIL $1 (exit $_rc, no result line; see $_o)"
		tail -n 20 "$_o"
		failed=$((failed + 1))
		return
	fi
	_p=${_l%% passed*}
	_f=${_l#*passed, }
	_f=${_f%% failed}
	if [ "$_rc" -ne 0 ] && [ "$_f" -eq 0 ]; then
		echo "FAIL $1 (exit $_rc; see $_o)"
		tail -n 20 "$_o"
		_f=1
	fi
	[ "$_f" -ne 0 ] && grep -vE '^(ok  |FAIL)' "$_o" | tail -n 40
	passed=$((passed + _p))
	failed=$((failed + _f))
}

# --- the pool: start jobs while fewer than $jobs run; report each that ended

: >"$log/durations.new"
running=""
reap() {
	_still=""
	for _r in $running; do
		_n=${_r%%:*}
		if [ -f "$log/$_n.rc" ]; then
			wait "${_r#*:}" 2>/dev/null
			report "$_n"
		else
			_still="$_still $_r"
		fi
	done
	running=$_still
}
count() { echo $#; }
stop_all() {
	for _r in $running; do
		kill -TERM "$(cat "$log/${_r%%:*}.pid" 2>/dev/null)" 2>/dev/null
	done
	wait
	exit 130
}
trap stop_all INT TERM
t_start=$(now_ms)
if [ "$what" != unit ] && [ "$isolate" = yes ]; then
	# Made once, before the scripts that share it start.
	sh tests/integration/pki.sh build/it/pki >"$log/pki.out" 2>&1 ||
		{ echo "FAIL test PKI (tests/integration/pki.sh)"; cat "$log/pki.out"; }
fi
while read -r name kind path; do
	# shellcheck disable=SC2086 # one word per job
	while [ "$(count $running)" -ge "$jobs" ]; do
		sleep 0.2
		reap
	done
	run_job "$name" "$kind" "$path" &
	running="$running $name:$!"
done <"$list"
while [ -n "$running" ]; do
	sleep 0.2
	reap
done
t_all=$((($(now_ms) - t_start) / 1000))

# This run's times first, then those of scripts it did not run.
if [ -s "$log/durations.new" ]; then
	{
		cat "$log/durations.new"
		[ -f build/test-durations ] && awk 'NR == FNR { n[$1] = 1; next } !($1 in n)' \
			"$log/durations.new" build/test-durations
	} >build/test-durations.tmp
	mv build/test-durations.tmp build/test-durations
fi
echo "# durations, slowest first ($jobs at a time, $t_all s in all):"
sort -k2,2nr "$log/durations.new" |
	awk '{ printf "#   %4d s  %-28s (CPU %.1f s)\n", $2, $1, $3; c += $3 } END { printf "#   CPU %.0f s in all\n", c }'
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
