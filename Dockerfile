# Wolf Wisdom: a two-stage image. Works with `docker build` (legacy builder or BuildKit) and Podman.
#   docker build . -t "wolf-wisdom-app"
#   docker run -p 8000:8000 --name wolf-wisdom-ws-service wolf-wisdom-app [server flags...]

# Build stage: the release preset, and its unit tests.
FROM debian:bookworm AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        g++ cmake ninja-build pkg-config \
        libboost1.81-dev libboost-program-options1.81-dev libboost-json1.81-dev libboost-test1.81-dev \
        libssl-dev libhiredis-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt CMakePresets.json ./
COPY cmake cmake
COPY source source
COPY assets assets
COPY test test
# A plain (non-developer) configure builds the server alone; the unit tests are asked for. The integration
# suites need loopback peers and a browser, and run in scripts/test instead. The install tree is what the
# runtime stage takes.
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" \
        -DWOLF_BUILD_TESTS=ON \
    && cmake --build build --target wolf-wisdom unit_tests \
    && ctest --test-dir build -L unit --output-on-failure \
    && DESTDIR=/install cmake --install build --prefix /usr/local --strip

# Runtime stage: the binary, the two Boost libraries, OpenSSL and hiredis it links, and a non-root user.
FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libboost-json1.81.0 libboost-program-options1.81.0 libssl3 libhiredis0.14 \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && useradd --system --no-create-home --shell /usr/sbin/nologin --uid 10001 wolf
COPY --from=build /install/usr/local/ /usr/local/
USER wolf
EXPOSE 8000
# bash's /dev/tcp: no HTTP client needed in the image. Checks the default port; with --tls-cert the port
# answers plain HTTP with "this port speaks TLS", which shows the server is up just as well.
HEALTHCHECK --interval=10s --timeout=3s --start-period=3s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8000 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && grep -qE '\"status\":\"ok\"|this port speaks TLS' <&3"]
# Exec form: the server is PID 1 and receives docker stop's SIGTERM itself (it closes every
# WebSocket with 1001 and exits 0 within its 5 s grace).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/wolf-wisdom"]
