# syntax=docker/dockerfile:1
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

# ---- build ----
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc make libc6-dev pkg-config ca-certificates android-libboringssl-dev \
      libev-dev libinih-dev libidn2-dev libcurl4-gnutls-dev \
      libunbound-dev libevent-dev dns-root-data libsystemd-dev dpkg-dev \
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
 && rm -rf /var/lib/apt/lists/*
COPY --chmod=0755 deploy/redirect.sh /usr/local/sbin/mxtls-redirect
ENTRYPOINT ["mxtls-redirect"]
CMD ["status"]

# ---- runtime ----
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      android-libboringssl libev4 libinih1 libidn2-0 \
      libunbound8 libevent-2.1-7 dns-root-data libsystemd0 \
      libcurl3-gnutls ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# A fixed UID/GID, so that Kubernetes' runAsUser and the redirect's
# --uid (deploy/kubernetes/) name the same user.
RUN groupadd --system --gid 10025 mxtls \
 && useradd --system --uid 10025 --gid mxtls --home-dir /var/lib/mxtls \
      --no-create-home --shell /usr/sbin/nologin mxtls \
 && install -d -o mxtls -g mxtls -m 0700 /var/lib/mxtls
# Both programs of `make`: the proxy and its HTTPS policy fetcher
# (mxtls-fetch links libcurl, mxtls BoringSSL: never both in one process,
# docs/behaviour.md "Parts").
COPY --from=build /src/build/mxtls /src/build/mxtls-fetch /usr/local/bin/
COPY ca-bundles/ca-certificates.crt /usr/share/mxtls/ca-certificates.crt
COPY deploy/container/mxtls.ini /etc/mxtls/mxtls.ini
COPY --chmod=0755 deploy/healthcheck.sh /usr/local/bin/mxtls-healthcheck
USER 10025:10025
WORKDIR /var/lib/mxtls
# 10025: SMTP from the MTA (relay mode); 9925: admin (/healthz, /readyz,
# /metrics), on 127.0.0.1 unless the config sets admin_listen.
EXPOSE 10025 9925
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
  CMD ["mxtls-healthcheck", "http", "127.0.0.1:9925", "/healthz"]
ENTRYPOINT ["mxtls"]
CMD ["-c", "/etc/mxtls/mxtls.ini"]
