# syntax=docker/dockerfile:1
# sublist with the GPU backend (burn's wgpu over Vulkan). Build:
#   docker build -t sublist .
# Run (NVIDIA GPU; the config comes from a file or SUBLIST_* variables):
#   docker run --gpus all -v sublist-data:/data -v $PWD/sublist.toml:/config/sublist.toml:ro \
#     -p 127.0.0.1:8888:8888 sublist

FROM rust:1.95-bookworm AS build
WORKDIR /src
# What the build reads: the manifest, the sources (with the demo sample and the evaluation data
# set they embed) and the migrations. The tests and their API descriptions are not needed.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked --features gpu \
 && cp target/release/sublist /usr/local/bin/sublist

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libvulkan1 tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin sublist \
 && mkdir -p /data /config && chown sublist:sublist /data
COPY --from=build /usr/local/bin/sublist /usr/local/bin/sublist
COPY config.example.toml /config/config.example.toml
USER sublist
WORKDIR /data
VOLUME ["/data"]
ENV SUBLIST_CONFIG=/config/sublist.toml \
    SUBLIST_STORE__DATABASE=/data/sublist.db \
    SUBLIST_WEB__LISTEN=0.0.0.0:8888 \
    NVIDIA_DRIVER_CAPABILITIES=compute,graphics,utility
EXPOSE 8888
ENTRYPOINT ["/usr/bin/tini", "--", "sublist"]
CMD ["run"]
