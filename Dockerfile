# scaleout's container image for those who build with Docker (BuildKit).
# `make image` builds the same image without Docker; see docs/incluster.md.
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg COMMIT=$(git rev-parse HEAD) -t REGISTRY/scaleout:TAG --push .
#
# The result: a static scaleout at /scaleout (the entrypoint), the builder's
# CA certificates, the nonroot user 65532, and a world-writable /work as the
# working directory, where runs/ is written.

ARG GO_VERSION=1.26
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS
ARG TARGETARCH
ARG COMMIT=
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false -ldflags "-s -w -X main.commit=${COMMIT}" -o /rootfs/scaleout ./cmd/scaleout
RUN mkdir -p /rootfs/etc/ssl/certs /rootfs/tmp /rootfs/work \
 && chmod 1777 /rootfs/tmp /rootfs/work \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/work:/sbin/nologin\n' > /rootfs/etc/passwd \
 && printf 'root:x:0:\nnonroot:x:65532:\n' > /rootfs/etc/group

FROM scratch
ARG COMMIT=
COPY --from=build /rootfs/ /
LABEL org.opencontainers.image.revision=$COMMIT \
      org.opencontainers.image.source=https://github.com/scaleout/scaleout \
      org.opencontainers.image.title=scaleout \
      org.opencontainers.image.licenses=Apache-2.0
ENV PATH=/ HOME=/work SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /work
ENTRYPOINT ["/scaleout"]
