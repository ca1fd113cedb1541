# imbench and imbench-server in one image: a build stage on Rust's Debian image, then a small
# runtime on Debian's slim image with the two binaries, `ip` (for `imbench path` and emulated
# networks, which also need root and NET_ADMIN) and the scenarios.
#
#   docker build -t imbench .        (or podman build -t imbench .)
#   docker run --rm imbench          (`imbench run`: the default scenario, embedded server)
#   docker run --rm --entrypoint imbench-server imbench --quic 0.0.0.0:4433
#
# Where base images cannot be pulled, `scripts/image-local` makes an image of the same layout
# from release binaries built on the machine (see docs/scale.md).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin imbench --bin imbench-server

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends iproute2 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/imbench /src/target/release/imbench-server /usr/local/bin/
COPY scenarios /opt/imbench/scenarios
WORKDIR /opt/imbench
ENTRYPOINT ["imbench"]
CMD ["run"]
