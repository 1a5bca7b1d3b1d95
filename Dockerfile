# berth as a container image, a drop-in for Distribution's `registry:2`: same port (5000), same
# configuration path (/etc/docker/registry/config.yml), same storage volume (/var/lib/registry).
#
#   docker build -t berth .        (or: podman build -t berth .)
#   docker run -d -p 5000:5000 -v registry-data:/var/lib/registry berth
#
# tests/e2e/test_image.sh builds an equivalent image offline (buildah, from scratch: the binary,
# the libraries ldd lists, this configuration) and pushes and pulls through it with podman.
FROM debian:bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libmicrohttpd-dev libjansson-dev libssl-dev libyaml-dev \
      libcrypt-dev libcurl4-openssl-dev libhiredis-dev libpsl-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN rm -rf build && cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBERTH_TESTS=OFF \
    && cmake --build build -j "$(nproc)" --target berth \
    && cmake --install build --prefix /usr --strip

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      libmicrohttpd12 libjansson4 libssl3 libyaml-0-2 libcrypt1 libgnutls30 libcurl4 libhiredis0.14 \
      libpsl5 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/registry --shell /usr/sbin/nologin berth \
    && mkdir -p /var/lib/registry /etc/docker/registry && chown berth:berth /var/lib/registry
COPY --from=build /usr/bin/berth /usr/bin/berth
COPY packaging/image-config.yml /etc/docker/registry/config.yml
USER berth
VOLUME ["/var/lib/registry"]
EXPOSE 5000
ENTRYPOINT ["/usr/bin/berth", "serve"]
CMD ["/etc/docker/registry/config.yml"]
