# syntax=docker/dockerfile:1
# tollgate as a sidecar: a small runtime image, non-root, listening on
# inet:0.0.0.0:8894 with its configuration at /etc/tollgate/milter.yaml.
# See docs/docker.md.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tollgate \
 && strip target/release/tollgate

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin tollgate
COPY --from=build /src/target/release/tollgate /usr/local/bin/tollgate
COPY deploy/docker/milter.yaml /etc/tollgate/milter.yaml
USER tollgate
EXPOSE 8894
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["tollgate", "health", "--config", "/etc/tollgate/milter.yaml"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["tollgate"]
CMD ["serve", "--config", "/etc/tollgate/milter.yaml"]
