# syntax=docker/dockerfile:1
# okta-adapter container image (docs/deploy.md).
#
#   docker build -t okta-adapter:dev .
#   docker run --rm -p 8080:8080 -v "$PWD/secrets:/var/run/secrets/okta-adapter:ro" \
#     -e OKTA_ADAPTER__HOOKS__SECRETS_FILE=/var/run/secrets/okta-adapter/hook-secrets \
#     -e OKTA_ADAPTER__REDIS__URL_FILE=/var/run/secrets/okta-adapter/redis-url okta-adapter:dev
#
# Build stage: the pinned toolchain (the version this repository is tested with) and
# `--locked`, so the image builds exactly Cargo.lock. Templates, fonts and the default config are
# compiled into the binary (include_str!/include_bytes!), so the runtime stage needs nothing else.
ARG RUST_VERSION=1.95.0
FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so a source change does not rebuild ~460 crates: compile them against
# stub sources with the real manifests and lock file, then the real sources.
COPY Cargo.toml Cargo.lock ./
COPY crates/okta-sim/Cargo.toml crates/okta-sim/Cargo.toml
RUN mkdir -p src crates/okta-sim/src \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && echo 'fn main() {}' > crates/okta-sim/src/main.rs && touch crates/okta-sim/src/lib.rs \
 && cargo build --release --locked --bin okta-adapter \
 && rm -rf src crates/okta-sim/src
COPY . .
# touch: the stubs above are newer than the real sources' mtimes in some build contexts.
RUN touch src/main.rs src/lib.rs crates/okta-sim/src/lib.rs \
 && cargo build --release --locked --bin okta-adapter \
 && mkdir -p /out/var/lib/okta-adapter/reports \
 && cp target/release/okta-adapter /out/okta-adapter

# Runtime stage: distroless (glibc + CA certificates, no shell, no package manager), as the
# image's unprivileged `nonroot` user (uid 65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/okta-adapter /usr/local/bin/okta-adapter
# The only writable place the adapter needs: report previews and the file-transport outbox.
COPY --from=build --chown=65532:65532 /out/var/lib/okta-adapter /var/lib/okta-adapter
WORKDIR /var/lib/okta-adapter
USER 65532:65532
ENV OKTA_ADAPTER__HTTP__LISTEN=0.0.0.0:8080 \
    OKTA_ADAPTER__LOG__FORMAT=json \
    OKTA_ADAPTER__REPORT__OUTPUT_DIR=/var/lib/okta-adapter/reports
EXPOSE 8080
# The image has no curl: the binary asks its own /healthz (on the port http.listen names).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/okta-adapter", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/okta-adapter"]
CMD ["serve"]
