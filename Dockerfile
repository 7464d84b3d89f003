# syntax=docker/dockerfile:1
#
# owp-server container image.
#   docker build -t owp-server .
#   docker run --rm -p 3000:3000 owp-server
# A release build says what it is (OCI labels, and the version and revision the binary reports):
#   docker build -t registry.example.com/openwatchparty/owp-server:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" .
# Podman and Buildah build it as it is (`podman build -t owp-server .`).
#
# Base images are fully qualified (registry/namespace/name:tag): Podman, Buildah and CRI-O
# refuse unqualified short names unless a registries.conf alias or search list says where
# to look.
#
# Build stage: the official Swift image on Debian 12 (bookworm), the same Debian release as the
# runtime stage, so the binary's glibc and libstdc++ match. Pick the Swift release with
# --build-arg SWIFT_IMAGE=docker.io/library/swift:6.1-bookworm (the package needs Swift 6.1
# or newer).
ARG SWIFT_IMAGE=docker.io/library/swift:6.3-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim
# What the image is built from; pass the real values for a release (above). Empty VERSION and
# REVISION mean "not given", as for the SwiftPM build plugin: the binary then reports the
# version in its sources and the revision `unknown` (the build context has no .git, so
# REVISION is the only way the commit reaches the binary), and the labels say `unknown`.
# CREATED is RFC 3339; its default is the Unix epoch (the SOURCE_DATE_EPOCH=0 convention of
# reproducible builds), never the build machine's clock.
ARG VERSION=
ARG REVISION=
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=https://github.com/openwatchparty/owp-server
# SPDX expression; the repository declares no licence yet.
ARG LICENSES=NOASSERTION

FROM ${SWIFT_IMAGE} AS build

# CompressNIO links zlib; the Swift image ships no zlib headers. Debian's archive drops
# superseded versions, so apt packages are deliberately not pinned (DL3008).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Dependencies first, so that a source change does not fetch them again. Package.resolved is
# left out by .dockerignore (the workstation's copy may pin mirror commits): resolution here
# is fresh, within the version ranges of Package.swift.
COPY Package.swift ./
RUN swift package resolve

# The rest of the package: .dockerignore is an allow-list (Package.swift, Sources/, Tests/,
# Plugins/), so this copies exactly the package's own directories, whichever of them exist.
COPY . ./

# Declared here, not earlier, so that a new revision does not invalidate the cached layers
# above (dependency resolution). The SwiftPM build plugin (Plugins/BuildInfoPlugin) reads
# OWP_BUILD_REVISION and OWP_BUILD_VERSION first; an empty value falls back to `git rev-parse`
# (no .git here: `unknown`) and to the version in the sources.
ARG VERSION
ARG REVISION

# --static-swift-stdlib links the Swift runtime, Foundation (with its ICU data) and Dispatch
# into the binary, so the runtime image needs no Swift libraries: what stays dynamic is glibc,
# libstdc++, libgcc_s and zlib, all plain Debian packages. swift-backtrace-static symbolicates
# crash backtraces inside the container (SWIFT_BACKTRACE below).
RUN OWP_BUILD_VERSION="${VERSION}" OWP_BUILD_REVISION="${REVISION}" \
        swift build -c release --product owp-server --static-swift-stdlib \
    && install -D -m 0755 "$(swift build -c release --show-bin-path)/owp-server" /out/owp-server \
    && install -D -m 0755 /usr/libexec/swift/linux/swift-backtrace-static /out/swift-backtrace

FROM ${RUNTIME_IMAGE} AS runtime

# ca-certificates for outbound TLS (none today; JWKS/PostgreSQL later), zlib1g for
# permessage-deflate, libstdc++6 (already in the slim image, listed because the binary links
# it). coreutils' `sleep` (Essential, always present) runs the Kubernetes preStop hook.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates zlib1g libstdc++6 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 owp \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin owp

COPY --from=build /out/owp-server /usr/local/bin/owp-server
COPY --from=build /out/swift-backtrace /usr/local/libexec/swift-backtrace

ENV SWIFT_BACKTRACE=enable=yes,sanitize=yes,threads=all,images=all,interactive=no,swift-backtrace=/usr/local/libexec/swift-backtrace \
    HOST=0.0.0.0 \
    PORT=3000

# OCI image annotations (github.com/opencontainers/image-spec, annotations.md). Last, so that
# the layers above stay cached from one revision to the next.
ARG RUNTIME_IMAGE
ARG VERSION
ARG REVISION
ARG CREATED
ARG SOURCE
ARG LICENSES
LABEL org.opencontainers.image.title="owp-server" \
      org.opencontainers.image.description="OpenWatchParty session server: WebSocket rooms that keep Jellyfin watch parties in sync" \
      org.opencontainers.image.vendor="OpenWatchParty" \
      org.opencontainers.image.version="${VERSION:-unknown}" \
      org.opencontainers.image.revision="${REVISION:-unknown}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.url="${SOURCE}" \
      org.opencontainers.image.licenses="${LICENSES}" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}"

# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
# Only the public port. The admin API (ADMIN_PORT, off unless set) binds 127.0.0.1 by default
# and is reached with `kubectl port-forward`, never published (docs/operations.md).
EXPOSE 3000

# No HEALTHCHECK: the image has no HTTP client, and Kubernetes uses its own probes
# (GET /healthz, /readyz). Under plain Docker: curl -f http://localhost:3000/healthz.

# Exec form: owp-server is PID 1 and receives SIGTERM itself, which starts its drain
# (readiness 503, rooms closed, sockets closed 1001, exit 0). It installs its own signal
# handlers, and starts no child processes to reap (the backtracer runs only on a crash).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/owp-server"]
