# mxtls container images, all on Debian 12 (bookworm):
#
#   docker build -t mxtls .                            the proxy (final stage: runtime)
#   docker build --target redirect -t mxtls-redirect . the Kubernetes init container:
#                                                      deploy/redirect.sh + nft/iptables
#
# The build stage installs the same packages as `deploy/install-deps.sh build`
# (tests/deploy/test_dockerfile.sh checks that the lists agree) and runs
# `make`; the runtime stage has only the shared libraries mxtls and
# mxtls-fetch load, the CA bundles and a non-root user.  amd64 only for now:
# the Makefile links BoringSSL from /usr/lib/x86_64-linux-gnu/android.
#
# Plain Dockerfile syntax, no BuildKit features (no COPY --chmod, no
# syntax= line): `podman build` / buildah and Docker's classic builder
# build it too.  Without a registry, `make image` bootstraps the base
# image with mmdebstrap (deploy/container/mkbase.sh) and builds both
# images with podman.

# ---- build ----
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc make libc6-dev pkg-config ca-certificates android-libboringssl-dev \
      libev-dev libidn2-dev libcurl4-gnutls-dev \
      libunbound-dev libevent-dev dns-root-data libsystemd-dev dpkg-dev \
      zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make -j"$(nproc)"

# ---- redirect: the init container that installs the port-25 redirect ----
# Needs only CAP_NET_ADMIN (nft and iptables-nft; iptables-legacy would need
# CAP_NET_RAW too).  Runs as root inside the pod's network namespace.
FROM debian:bookworm-slim AS redirect
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      nftables iptables \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt/* /var/log/dpkg.log
# A separate chmod (not COPY --chmod, which needs BuildKit): the script
# must be executable whatever the umask of the checkout it came from.
COPY deploy/redirect.sh /usr/local/sbin/mxtls-redirect
RUN chmod 0755 /usr/local/sbin/mxtls-redirect
ENTRYPOINT ["mxtls-redirect"]
CMD ["status"]

# ---- runtime ----
FROM debian:bookworm-slim AS runtime
# The runtime libraries, one a line: the packages of the libraries that
# `ldd build/mxtls build/mxtls-fetch` lists (tests/deploy/test_dockerfile.sh
# checks that they cover them); dns-root-data is the root trust anchor
# DNSSEC validation starts from.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      android-libboringssl \
      ca-certificates \
      dns-root-data \
      libcurl3-gnutls \
      libev4 \
      libevent-2.1-7 \
      libidn2-0 \
      libsystemd0 \
      libunbound8 \
      zlib1g \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt/* /var/log/dpkg.log
# A fixed UID/GID, so that Kubernetes' runAsUser and the redirect's
# --uid (deploy/kubernetes/) name the same user.
RUN groupadd --system --gid 10025 mxtls \
 && useradd --system --uid 10025 --gid mxtls --home-dir /var/lib/mxtls \
      --no-create-home --shell /usr/sbin/nologin mxtls \
 && install -d -o mxtls -g mxtls -m 0700 /var/lib/mxtls
# Both programs of `make`: the proxy and its HTTPS policy fetcher.  The
# fetcher is a separate process with libcurl so that the HTTP stack for
# MTA-STS never shares an address space with the SMTP sessions' TLS
# (BoringSSL in mxtls).
COPY --from=build /src/build/mxtls /src/build/mxtls-fetch /usr/local/bin/
COPY ca-bundles/ca-certificates.crt /usr/share/mxtls/ca-certificates.crt
COPY deploy/container/mxtls.ini /etc/mxtls/mxtls.ini
COPY deploy/healthcheck.sh /usr/local/bin/mxtls-healthcheck
RUN chmod 0755 /usr/local/bin/mxtls-healthcheck
USER 10025:10025
WORKDIR /var/lib/mxtls
# 10025: SMTP from the MTA (relay mode); 9925: admin (/healthz, /readyz,
# /metrics), on 127.0.0.1 unless the config sets admin_listen.
EXPOSE 10025 9925
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
  CMD ["mxtls-healthcheck", "http", "127.0.0.1:9925", "/healthz"]
ENTRYPOINT ["mxtls"]
CMD ["-c", "/etc/mxtls/mxtls.ini"]
