#!/bin/sh
# build-image.sh — `make image`: both images of the Dockerfile with podman,
# on a machine without Docker or a registry.
#
#   deploy/container/build-image.sh [TAG]        default TAG: latest
#
# 1. debian:bookworm-slim from a Debian mirror (mkbase.sh; its tarball is
#    kept in build/image/, so only the first run bootstraps);
# 2. localhost/mxtls:TAG (the runtime stage) and localhost/mxtls-redirect:TAG
#    (the redirect stage), --pull=never: nothing comes from a registry.
#
# --format docker keeps the HEALTHCHECK (the OCI image format has none).
# Unless CONTAINERS_CONF names a file already, podman gets
# build/image/containers.conf (podman-env.sh): runc, and ulimits this
# machine's limits allow.
set -eu
cd "$(dirname "$0")/../.."
tag=${1:-latest}
. deploy/container/podman-env.sh

for c in podman mmdebstrap; do
	command -v "$c" >/dev/null 2>&1 || {
		echo "build-image: $c is not installed (apt-get install podman mmdebstrap runc)" >&2
		exit 1
	}
done
sh deploy/container/mkbase.sh
podman build --pull=never --format docker --target runtime -t "localhost/mxtls:$tag" .
podman build --pull=never --format docker --target redirect -t "localhost/mxtls-redirect:$tag" .
podman image ls --filter reference=localhost/mxtls --filter reference=localhost/mxtls-redirect
