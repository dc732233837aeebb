# syntax=docker/dockerfile:1
# millrace: one static binary in a small image, running as a non-root user.
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/millrace ./cmd/millrace

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="millrace" \
      org.opencontainers.image.description="Keeps the companydata PostgreSQL database supplied with clean data from S3" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
COPY --from=build /out/millrace /usr/local/bin/millrace
USER nonroot:nonroot
ENV MILLRACE_HTTP_ADDR=:8082
EXPOSE 8082
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["/usr/local/bin/millrace", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/millrace"]
CMD ["serve", "--setup"]
