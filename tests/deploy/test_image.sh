#!/bin/sh
# The container images for real (`make test-image`, after `make image`):
#   1. localhost/mxtls run alone, as README.md shows it (read-only, no
#      capabilities, a named volume for its state, the config mounted),
#      with host networking: swaks -> the container -> a Postfix MX on
#      127.0.0.2:25, and the MX must have received it over TLS; the
#      start-up time (podman run to the port listening); the health check
#      script; a config reload with SIGHUP, without a restart;
#   2. the Kubernetes manifests of deploy/kubernetes/ under `podman kube
#      play` (kube_manifest.py changes only images and test settings): the
#      redirect init container with NET_ADMIN in the pod's network
#      namespace, the mxtls sidecar, and an "MTA" that sends in plain SMTP
#      to the MX's address 192.0.2.25:25; the MX must get it over TLS from
#      mxtls.
# Everything runs in a private network namespace (the script re-executes
# itself under `unshare -n`): the MX, the DNS server, podman's bridge and
# its firewall rules and the pod's route to the MX vanish with it.  All
# containers, the pod and the volume are removed at the end, also on
# failure or interruption.
#
# Only with MXTLS_TEST_IMAGE=1 (as `make test-image` sets it): it takes a
# minute or more and needs podman and the images, so `make test` (which
# runs every tests/deploy/test_*.sh) skips it.
# The sh -c '...' strings are expanded by the inner shell: single quotes
# on purpose throughout.
# shellcheck source-path=SCRIPTDIR disable=SC2016
set -u

if [ "${MXTLS_TEST_IMAGE:-}" != 1 ]; then
	echo "# skipped: the images are tested by make test-image (MXTLS_TEST_IMAGE=1)"
	echo "0 passed, 0 failed"
	exit 0
fi
if [ "${MXTLS_IMAGE_NETNS:-}" != 1 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "FAIL test_image.sh runs as root (podman, a network namespace)"
		echo "0 passed, 1 failed"
		exit 1
	fi
	MXTLS_IMAGE_NETNS=1 exec unshare -n sh -c 'ip link set lo up && exec sh "$0"' "$0"
fi

IT_TIMEOUT=${IT_TIMEOUT:-300}
. "$(dirname "$0")/../integration/lib.sh"
. "$IT_ROOT/deploy/container/podman-env.sh"

TAG=${MXTLS_IMAGE_TAG:-latest}
IMG=localhost/mxtls:$TAG
CTR=mxtls-test-image-$$
VOL=mxtls-test-image-state-$$
POD=mxtls-test-image      # the Deployment's name; its pod is $POD-pod-0
MXADDR=192.0.2.25          # the MX as the pod sees it (TEST-NET-1)

img_cleanup() {
	podman rm -f -t 0 "$CTR" >/dev/null 2>&1
	podman volume rm -f "$VOL" >/dev/null 2>&1
	if [ -f "$W/kube.yaml" ]; then
		podman kube down "$W/kube.yaml" >/dev/null 2>&1
	fi
	podman pod rm -f -t 0 "$POD-pod-0" >/dev/null 2>&1
	# What kube play creates besides the pod: the ConfigMap's volume, and
	# its network unless it was there before.
	podman volume rm -f "$POD-config" >/dev/null 2>&1
	[ "$kube_net_before" = yes ] ||
		podman network rm -f podman-default-kube-network >/dev/null 2>&1
	return 0
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

kube_net_before=no
podman network exists podman-default-kube-network && kube_net_before=yes
it_setup
trap 'img_cleanup; it_stop_all' EXIT
trap 'img_cleanup; it_interrupted' INT TERM

for i in "$IMG" "localhost/mxtls-redirect:$TAG"; do
	if ! podman image exists "$i"; then
		fail "image $i exists" "build it: make image"
		img_cleanup
		finish
	fi
done
ok_img=$(podman image inspect -f '{{.Config.User}}' "$IMG")
check "the image runs as user 10025:10025" test "$ok_img" = 10025:10025

# ---- the network: the MX on 127.0.0.2 and, for the pod, on 192.0.2.25 ----
# On lo: a local address the pod reaches through podman's bridge (its
# default route), with no dummy interface (not every kernel has the module).
if ! ip addr add "$MXADDR/32" dev lo; then
	fail "address $MXADDR on lo"
fi
dns_mx example.test mx.example.test 10
dns_a mx.example.test 127.0.0.2
# In transparent mode mxtls checks the certificate against the names of
# the recipient domain's MX hosts that resolve to the original destination.
dns_mx pod.example.test mx2.example.test 10
dns_a mx2.example.test "$MXADDR"
DNS_ARGS="$DNS_ARGS --listen-address=$MXADDR"
dns_start || finish
# The pod's connections come from podman's network, not loopback: the MX
# takes them as it takes any sender for the domains it serves.
pf_mx mx1 "127.0.0.2:25,$MXADDR:25" cert=valid \
	main='smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination' || { fail "Postfix MX starts"; finish; }

# ==== 1. the image alone (host network) ====
PORT=$(free_port)
APORT=$(free_port)
ETC=$W/etc
mkdir -p "$ETC"
cp "$PKI/test-root-ca.pem" "$ETC/test-root-ca.pem"
cat >"$ETC/mxtls.ini" <<EOF2
[proxy]
listen = 127.0.0.1:$PORT
hostname = mxtls.test
allow_clients = 127.0.0.0/8
state_dir = /var/lib/mxtls
admin_listen = 127.0.0.1:$APORT
log_format = logfmt
log_level = info

[dns]
servers = 127.0.0.1:$DNS_PORT
allow_private_mx = yes

[tls]
ca_bundle = /etc/mxtls/test-root-ca.pem
min_version = 1.2

[policy]
default = opportunistic
EOF2
chmod 755 "$ETC"
chmod 644 "$ETC"/*

# The container's own HEALTHCHECK would need systemd timers here; the
# check below runs the same script with podman exec.
t0=$(now_ms)
podman run -d --name "$CTR" --network host --read-only --cap-drop ALL \
	--security-opt no-new-privileges --no-healthcheck \
	-v "$ETC:/etc/mxtls:ro" -v "$VOL:/var/lib/mxtls" "$IMG" \
	>"$W/run.out" 2>&1
rc=$?
t1=$(now_ms)
check "podman run $IMG (exit $rc)" test "$rc" -eq 0
up=no
until [ "$(now_ms)" -gt $((t1 + 20000)) ]; do
	if port_busy "127.0.0.1:$PORT"; then up=yes; break; fi
	sleep 0.01
done
t2=$(now_ms)
if [ "$up" = yes ]; then
	ok_ms=$((t2 - t0))
	note "start-up: $ok_ms ms from podman run to 127.0.0.1:$PORT listening ($((t1 - t0)) ms in podman run)"
	echo "$ok_ms" >"$W/startup-ms"
	check "the container listens on 127.0.0.1:$PORT" true
else
	fail "the container listens on 127.0.0.1:$PORT" "$(cat "$W/run.out"; podman logs "$CTR" 2>&1 | tail -n 20)"
fi
check "mxtls runs as UID 10025 in the container" \
	sh -c 'test "$(podman exec "$1" id -u)" = 10025' sh "$CTR"
check "mxtls-healthcheck in the container: /healthz answers 200" \
	podman exec "$CTR" mxtls-healthcheck http "127.0.0.1:$APORT" /healthz
check "the state volume belongs to mxtls" \
	sh -c 'test "$(podman exec "$1" stat -c %u:%a /var/lib/mxtls)" = 10025:700' sh "$CTR"

swaks --server "127.0.0.1:$PORT" --from s@sender.test --to image@example.test \
	--header "Subject: through the container" >"$W/swaks.out" 2>&1
echo "exit=$?" >>"$W/swaks.out"
check "swaks -> container: 250 after the dot" swaks_ok "$W/swaks.out"
check "the MX received it from mxtls over TLSv1.3" received_over mx1 image@example.test TLSv1.3

# The reload recipe of README.md: SIGHUP to PID 1 (mxtls), with bash's
# kill (the image has no kill program).
sed -i 's/^log_level = info$/log_level = debug/' "$ETC/mxtls.ini"
podman exec "$CTR" bash -c 'kill -HUP 1'
check "SIGHUP reloads the config in the container (no restart)" wait_until 10 \
	sh -c 'podman logs "$1" 2>&1 | grep -q "reloaded"' sh "$CTR"
check "the container still runs after the reload" \
	sh -c 'test "$(podman inspect -f "{{.State.Running}}" "$1")" = true' sh "$CTR"
podman logs "$CTR" >"$W/container.log" 2>&1
podman rm -f -t 10 "$CTR" >/dev/null 2>&1

# ==== 2. the Kubernetes manifests under podman kube play ====
# The emptyDir as the kubelet makes it (see kube_manifest.py).
mkdir -p "$W/emptydir"
chmod 0777 "$W/emptydir"
if python3 "$IT_ROOT/tests/deploy/kube_manifest.py" "$IT_ROOT" "$W/kube.yaml" \
	"$POD" "$TAG" "$MXADDR" "$DNS_PORT" pod@pod.example.test "through the pod" \
	"$PKI/test-root-ca.pem" "$W/emptydir" >"$W/kube_manifest.out" 2>&1; then
	check "the manifests made runnable ($W/kube.yaml)" true
else
	fail "the manifests made runnable" "$(cat "$W/kube_manifest.out")"
fi
t0=$(now_ms)
podman kube play "$W/kube.yaml" >"$W/kube-play.out" 2>&1
rc=$?
t1=$(now_ms)
note "podman kube play: $((t1 - t0)) ms"
check "podman kube play (exit $rc)" sh -c 'exit "$1"' sh "$rc"
[ "$rc" -eq 0 ] || sed 's/^/  | /' "$W/kube-play.out"
played=$LAST_OK
check_if "$played" "the pod's MTA delivered (plain SMTP to $MXADDR:25)" wait_until 60 \
	sh -c 'podman logs "$1-pod-0-mta" 2>&1 | grep -q "^mta: delivered"' sh "$POD"
delivered=$LAST_OK
check_if "$delivered" "the MX received it from mxtls over TLSv1.3" received_over mx1 pod@pod.example.test TLSv1.3
check_if "$delivered" "mxtls logged the delivery to $MXADDR" \
	sh -c 'podman logs "$1-pod-0-mxtls" 2>&1 | grep "delivery" | grep -q "$2"' sh "$POD" "$MXADDR"
check_if "$played" "mxtls in the pod runs as UID 10025" \
	sh -c 'test "$(podman exec "$1-pod-0-mxtls" id -u)" = 10025' sh "$POD"
check_if "$played" "mxtls made its state_dir, 0700, on the emptyDir" \
	sh -c 'test "$(stat -c %u:%a "$1/state")" = 10025:700' sh "$W/emptydir"
for c in mta mxtls; do
	podman logs "$POD-pod-0-$c" >"$W/pod-$c.log" 2>&1
done
[ "$LAST_OK" = yes ] || sed 's/^/  | /' "$W/pod-mta.log" | tail -n 20

img_cleanup
check "no container, pod or volume of the test is left" sh -c \
	'! podman ps -a --format "{{.Names}}" | grep -q "^mxtls-test-image" &&
	 ! podman pod exists "$1-pod-0" && ! podman volume exists "$2" &&
	 ! podman volume exists "$1-config"' sh "$POD" "$VOL"
finish
