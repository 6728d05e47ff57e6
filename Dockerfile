# syntax=docker/dockerfile:1
# Depot: a multi-stage build. The runtime image holds the binary, CA certificates, curl (for the
# health check) and the PostgreSQL client tools (`depot backup` on PostgreSQL runs pg_dump).
#   docker build -t depot .
#   docker run --env-file deploy/prod.env -p 8080:8080 depot            # API + workers
#   docker run --env-file deploy/prod.env depot migrate up              # one-off migration

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p depot \
 && cp target/release/depot /usr/local/bin/depot

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl postgresql-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/depot --create-home depot
COPY --from=build /usr/local/bin/depot /usr/local/bin/depot
USER 10001:10001
WORKDIR /var/lib/depot
ENV DEPOT_DATA_DIR=/var/lib/depot \
    DEPOT_HTTP_ADDR=0.0.0.0:8080 \
    DEPOT_METRICS_ADDR=0.0.0.0:9090
EXPOSE 8080 9090
# Liveness of the API; a `worker` container has no API listener: override with
# `--health-cmd 'curl -fsS http://127.0.0.1:9090/metrics'`.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["depot"]
CMD ["serve"]
