#!/bin/sh
# The hooks' "$1" is for mmdebstrap to expand: single quotes on purpose.
# shellcheck disable=SC2016
# mkbase.sh — make the Dockerfile's base image, debian:bookworm-slim, locally
# from a Debian mirror with mmdebstrap, for machines with no registry.
#
#   deploy/container/mkbase.sh [TARBALL]     default build/image/debian-bookworm-slim.tar
#
# The tarball is kept: a second run only re-imports it into podman when the
# image is missing (a cold bootstrap takes minutes, the import seconds).
# Delete the tarball to bootstrap again (a newer point release).
#
# The mirror: MXTLS_DEBIAN_MIRROR (default http://deb.debian.org/debian) and
# MXTLS_DEBIAN_SECURITY (default http://deb.debian.org/debian-security).
#
# Like Docker Hub's slim image: variant minbase (Priority: required and
# apt), merged /usr, no apt lists or caches (and apt told to keep none),
# and dpkg told to leave out
# manual pages, documentation and translations, also for the packages the
# Dockerfile installs later, so that its layers stay small.
set -eu

tar=${1:-build/image/debian-bookworm-slim.tar}
name=debian:bookworm-slim
mirror=${MXTLS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${MXTLS_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}

if [ ! -s "$tar" ]; then
	mkdir -p "$(dirname "$tar")"
	# Docker Hub's apt settings: no package caches (70 MB after an
	# `apt-get update`) and no downloaded .debs left in a layer.
	clean=$(mktemp)
	trap 'rm -f "$clean"' EXIT
	cat >"$clean" <<'CONF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CONF
	# SOURCE_DATE_EPOCH unset: the files get the real time, as usual.
	mmdebstrap --variant=minbase --format=tar \
		--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
		--dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/info/*' \
		--dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-include=/usr/share/doc/*/copyright' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		--dpkgopt='path-include=/usr/share/locale/locale.alias' \
		--dpkgopt='path-exclude=/usr/share/lintian/*' \
		--dpkgopt='path-exclude=/usr/share/linda/*' \
		--dpkgopt='path-exclude=/usr/share/groff/*' \
		--aptopt='Acquire::Languages "none"' \
		--customize-hook="upload $clean /etc/apt/apt.conf.d/docker-clean" \
		--customize-hook='chmod 0644 "$1"/etc/apt/apt.conf.d/docker-clean' \
		--customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/apt/* "$1"/var/log/dpkg.log "$1"/var/cache/ldconfig/aux-cache' \
		bookworm "$tar.part" \
		"deb $mirror bookworm main" \
		"deb $mirror bookworm-updates main" \
		"deb $security bookworm-security main"
	mv "$tar.part" "$tar"
fi

if podman image exists "$name" && [ "$(podman image inspect -f '{{.Labels.mxtls_base}}' "$name" 2>/dev/null)" = "$(stat -c %Y "$tar")" ]; then
	exit 0
fi
# The label ties the image to the tarball it came from: a new tarball is
# imported again.  Tagged under docker.io/library/ too, so that `FROM
# debian:bookworm-slim` finds it locally whatever the short-name settings.
podman import --change "LABEL mxtls_base=$(stat -c %Y "$tar")" \
	--change 'CMD ["bash"]' "$tar" "$name" >/dev/null
podman tag "localhost/$name" "docker.io/library/$name"
