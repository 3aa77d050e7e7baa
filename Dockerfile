# syntax=docker/dockerfile:1
#
# linq-exporter container image.
#
#   docker build -t linq-exporter:0.1.0 .
#   docker run --rm -p 10042:10042 linq-exporter:0.1.0 --demo
#
# Three stages:
#   planner  - a skeleton of the crate: the manifests, the lock file and every .rs file replaced by a
#              stub. It changes only when Cargo.toml, Cargo.lock or the list of source files changes.
#   builder  - compiles every dependency against that skeleton (the dependency-caching layer), then
#              the real sources. Debian 12 (bookworm): the same glibc as the runtime image and as the
#              Debian 12 machines on which CI runs the release binary.
#   runtime  - distroless cc-debian12, nonroot: glibc, libgcc, CA certificates and the binary. No shell,
#              no package manager, no build caches, no secrets.
#
# The build command below must stay exactly the release build that CI runs (.ci/run);
# scripts/ci-deploy.sh fails when the two differ.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS planner
WORKDIR /src
COPY . .
RUN printf 'fn main() {}\n' > /tmp/stub.rs \
    && find . -type f -name '*.rs' -exec cp /tmp/stub.rs {} \;

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY --from=planner /src ./
# Dependency-caching layer: every dependency is compiled here, against the stubs. Then the crate's
# own fingerprints are dropped, so the real sources below are always recompiled whatever their
# mtimes (COPY keeps the build context's, older than the stubs). `cargo clean -p` would not do:
# it also deletes some dependencies' artifacts (http, and everything above it, got rebuilt).
RUN cargo build --release --locked \
    && rm -rf target/release/.fingerprint/linq-exporter-*
COPY . .
# Passed to the compiler as LINQ_EXPORTER_REVISION (the revision label of linq_exporter_build_info).
ARG REVISION=unknown
ENV LINQ_EXPORTER_REVISION=${REVISION}
RUN cargo build --release --locked \
    && install -D -m 0555 target/release/linq-exporter /out/linq-exporter

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="linq-exporter" \
      org.opencontainers.image.description="Prometheus exporter for the health of Linq (iMessage, SMS, RCS) business conversations" \
      org.opencontainers.image.source="https://github.com/linq-exporter/linq-exporter" \
      org.opencontainers.image.url="https://github.com/linq-exporter/linq-exporter" \
      org.opencontainers.image.documentation="https://github.com/linq-exporter/linq-exporter#deploy" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=builder /out/linq-exporter /usr/local/bin/linq-exporter
# 65532 is the "nonroot" user and group of the distroless images.
USER 65532:65532
EXPOSE 10042
# No shell in the image: the binary probes its own /healthz (exit 0 healthy, 1 otherwise).
# If you move the listener off 127.0.0.1:10042, set LINQ_EXPORTER_HEALTHCHECK_URL to match.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/linq-exporter", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/linq-exporter"]
