# syntax=docker/dockerfile:1.7
#
# statesync image: a cgo binary (confluent-kafka-go with its bundled, statically linked librdkafka
# built against glibc) on distroless base, non-root.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t codr/statesync:dev .
#
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 ... (the builder stage runs on
# the target platform; confluent-kafka-go bundles librdkafka for both).

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
# The golang image already has gcc and the glibc headers that cgo needs. No musl/alpine: the bundled
# librdkafka for musl needs -tags musl and a different runtime; glibc on both sides keeps one build.
WORKDIR /src
ENV CGO_ENABLED=1 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/statesync ./cmd/statesync \
 && /out/statesync version

# base (not static): the binary links glibc dynamically. The image has ca-certificates (TLS to
# Kafka and MongoDB), tzdata, and the nonroot user 65532.
FROM gcr.io/distroless/base-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="statesync" \
      org.opencontainers.image.description="Syncs Codr Kafka state topics (codr.state.<entity>) into MongoDB" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/statesync /statesync
USER 65532:65532
# /metrics, /healthz, /readyz (STATESYNC_HTTP_ADDR, default :8080)
EXPOSE 8080
ENTRYPOINT ["/statesync"]
CMD ["run"]
