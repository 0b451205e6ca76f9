# syntax=docker/dockerfile:1.7
#
# statesync image: a cgo binary (confluent-kafka-go with its bundled, statically linked librdkafka
# built against glibc) on distroless base, non-root, no shell.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg REVISION=$(git rev-parse HEAD) -t codr/statesync:dev .
#
# The base images are build arguments so a build can swap them (a mirror, or the stand-ins that
# scripts/image builds where public registries cannot be reached); the defaults are the public
# images, pinned by digest (manifest lists: amd64 and arm64). Bump a digest deliberately:
#   crane digest golang:1.26-bookworm
#   crane digest gcr.io/distroless/base-debian12:nonroot
#
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 ... (the builder stage runs on
# the target platform; confluent-kafka-go bundles librdkafka for both).

# The builder needs Go (>= go.mod's go line; GOTOOLCHAIN=local never downloads another), gcc and
# the glibc headers: golang:*-bookworm has all three. No musl/alpine: the bundled librdkafka for
# musl needs -tags musl and a different runtime; glibc on both sides keeps one build.
ARG BUILDER_IMAGE=golang:1.26-bookworm@sha256:116d58cbd88c1297624acc6e967a060012422bacf9930927e23fb719189c6f36
# base (not static): the binary links glibc (libc, libm) dynamically. It has ca-certificates (TLS to
# Kafka and MongoDB), tzdata, and the nonroot user 65532.
ARG RUNTIME_IMAGE=gcr.io/distroless/base-debian12:nonroot@sha256:7f0c72cd138b442ae0deeb69c08b1acf5525439ba251a49ad93c320a061567e5

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
# GOPROXY: where go mod download fetches modules (scripts/image points it at the host's module
# cache, a file:// proxy, so the build needs no network).
ARG GOPROXY=https://proxy.golang.org,direct
ENV CGO_ENABLED=1 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local GOPROXY=${GOPROXY}

COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
ARG VERSION=dev
ARG REVISION=unknown
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${REVISION}" -o /out/statesync ./cmd/statesync \
 && /out/statesync version

FROM ${RUNTIME_IMAGE}
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/codr/statesync
ARG RUNTIME_IMAGE
LABEL org.opencontainers.image.title="statesync" \
      org.opencontainers.image.description="Syncs Codr Kafka state topics (codr.state.<entity>) into MongoDB" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}"
COPY --from=build /out/statesync /statesync
USER 65532:65532
# /metrics, /healthz, /readyz (STATESYNC_HTTP_ADDR, default :8080)
EXPOSE 8080
ENTRYPOINT ["/statesync"]
CMD ["run"]
