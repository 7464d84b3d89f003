# syntax=docker/dockerfile:1
#
# owp-server container image.
#   docker build -t owp-server .
#   docker run --rm -p 3000:3000 owp-server
#
# Build stage: the official Swift image on Debian 12 (bookworm), the same Debian release as the
# runtime stage, so the binary's glibc and libstdc++ match. Pick the Swift release with
# --build-arg SWIFT_IMAGE=swift:6.1-bookworm (the package needs Swift 6.1 or newer).
ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

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

COPY Sources ./Sources
COPY Tests ./Tests

# --static-swift-stdlib links the Swift runtime, Foundation (with its ICU data) and Dispatch
# into the binary, so the runtime image needs no Swift libraries: what stays dynamic is glibc,
# libstdc++, libgcc_s and zlib, all plain Debian packages. swift-backtrace-static symbolicates
# crash backtraces inside the container (SWIFT_BACKTRACE below).
RUN swift build -c release --product owp-server --static-swift-stdlib \
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

# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 3000

# No HEALTHCHECK: the image has no HTTP client, and Kubernetes uses its own probes
# (GET /healthz, /readyz). Under plain Docker: curl -f http://localhost:3000/healthz.

# Exec form: owp-server is PID 1 and receives SIGTERM itself, which starts its drain
# (readiness 503, rooms closed, sockets closed 1001, exit 0). It installs its own signal
# handlers, and starts no child processes to reap (the backtracer runs only on a crash).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/owp-server"]
