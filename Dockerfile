# syntax=docker/dockerfile:1
# tollgate as a sidecar: a small runtime image, non-root, listening on
# inet:0.0.0.0:8894 with its configuration at /etc/tollgate/milter.yaml,
# Prometheus metrics on 0.0.0.0:9187.
# See docs/docker.md.
#
# The runtime image is the binary and the few C libraries it links to
# (glibc's libc, libm and loader, libgcc_s), collected from the build stage
# with ldd, on an empty base: no shell, no package manager, no other
# program. With podman, build with `--format docker`: the OCI format has
# no HEALTHCHECK.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tollgate \
 && strip target/release/tollgate \
 && mkdir -p /rootfs/usr/local/bin /rootfs/etc/tollgate /rootfs/var/lib/tollgate \
 && chown 10001:10001 /rootfs/var/lib/tollgate \
 && cp target/release/tollgate /rootfs/usr/local/bin/tollgate \
 && ldd target/release/tollgate \
  | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' \
  | xargs cp --parents --dereference --target-directory=/rootfs \
 && echo "tollgate:x:10001:10001::/nonexistent:/usr/sbin/nologin" > /rootfs/etc/passwd \
 && echo "tollgate:x:10001:" > /rootfs/etc/group

FROM scratch
COPY --from=build /rootfs/ /
COPY deploy/docker/milter.yaml /etc/tollgate/milter.yaml
ENV PATH=/usr/local/bin
# The embedded greylisting store (greylist.path), when a policy greylists:
# mount a volume here so that triplets outlive the container.
VOLUME /var/lib/tollgate
USER 10001:10001
EXPOSE 8894
# Prometheus metrics (metrics.listen in the shipped milter.yaml).
EXPOSE 9187
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["tollgate", "health", "--config", "/etc/tollgate/milter.yaml"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["tollgate"]
CMD ["serve", "--config", "/etc/tollgate/milter.yaml"]
