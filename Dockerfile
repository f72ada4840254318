# syntax=docker/dockerfile:1
# mailproxy: a static binary on a distroless base, as a non-root user, state in /data.
#   docker build --build-arg VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse HEAD) -t mail-proxy .
#   docker run -p 8000:8000 -v mailproxy-data:/data -e GMP_API_TOKEN=secret -e MAIL_PROXY_ENCRYPTION_KEY=... mail-proxy

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build \
      -ldflags "-s -w -X github.com/mailproxy/mailproxy/internal/cli.version=${VERSION} -X github.com/mailproxy/mailproxy/internal/cli.commit=${COMMIT}" \
      -o /out/mail-proxy ./cmd/mail-proxy \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mail-proxy /usr/local/bin/mail-proxy
# The nonroot user (65532) owns the volume, so the SQLite file can be created there.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV GMP_HOST=0.0.0.0 \
    GMP_PORT=8000 \
    GMP_DB_PATH=/data/mail_service.db \
    GMP_URL=http://127.0.0.1:8000
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["/usr/local/bin/mail-proxy", "health"]
ENTRYPOINT ["/usr/local/bin/mail-proxy"]
CMD ["serve"]
