# shellcheck shell=sh
# Sourced by build-image.sh and tests/deploy/test_image.sh: a containers.conf
# for podman on hosts where its defaults fail, unless CONTAINERS_CONF is set.
#   - runtime runc: crun fails on a mixed cgroup v1/v2 layout;
#   - default_ulimits within this shell's own limits: podman's defaults
#     (nofile 1048576, nproc 4194304) cannot be raised to where the caller
#     may not go.  nproc at most 32768, the most runc could set here.
if [ -z "${CONTAINERS_CONF:-}" ]; then
	mkdir -p build/image
	# dash's ulimit has no -u: the soft limits from /proc.
	_nofile=$(awk '/^Max open files/ { print $4 }' /proc/self/limits)
	_nproc=$(awk '/^Max processes/ { print $3 }' /proc/self/limits)
	[ "$_nofile" = unlimited ] && _nofile=1048576
	{ [ "$_nproc" = unlimited ] || [ "$_nproc" -gt 32768 ]; } && _nproc=32768
	cat >build/image/containers.conf <<CONF
[containers]
default_ulimits = ["nofile=$_nofile:$_nofile", "nproc=$_nproc:$_nproc"]
[engine]
runtime = "runc"
CONF
	CONTAINERS_CONF=$PWD/build/image/containers.conf
	export CONTAINERS_CONF
fi
