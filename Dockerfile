# syntax=docker/dockerfile:1
#
# hookrelay: a static binary on distroless, running as a non-root user.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t hookrelay .
#   docker run --rm -e HOOKRELAY_DATABASE_URL=postgres://... -p 8080:8080 hookrelay
#
# examples/deploy/deploy_test.go parses this file and checks its shape.

# The Go version go.mod names (examples/deploy/deploy_test.go checks it).
FROM golang:1.26.8 AS build
WORKDIR /src
# Dependencies first, in their own layer, so code changes reuse it.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
# What `hookrelay version` and the deliveries' user-agent say. .git is not in
# the build context, so without this build arg the image says "dev".
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/hookrelay/hookrelay/relay.Version=${VERSION}" \
      -o /out/hookrelay ./cmd/hookrelay

# distroless/static has CA certificates and tzdata, no shell; the nonroot tag
# runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/hookrelay /hookrelay
USER nonroot:nonroot
# One listener: health, readiness, metrics and the admin API (HOOKRELAY_LISTEN_ADDR).
EXPOSE 8080
ENTRYPOINT ["/hookrelay"]
CMD ["run"]
