# syntax=docker/dockerfile:1
# authsvc, the zsm authentication service: a static Go binary on an empty
# base image, run as an unprivileged user. The same image runs
# `authsvc serve` (the default) and `authsvc migrate up` (docker-compose.yaml's
# one-shot migrate service). Versions: docs/deploy.md.

FROM golang:1.26.8-alpine3.23 AS build
WORKDIR /src
RUN apk add --no-cache ca-certificates
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ENV CGO_ENABLED=0 GOOS=linux GOFLAGS=-trimpath
RUN go build -ldflags="-s -w" -o /out/authsvc ./cmd/authsvc \
 && go build -ldflags="-s -w" -o /out/zsm-healthcheck ./deploy/healthcheck \
 && printf 'authsvc:x:65532:65532:authsvc:/nonexistent:/sbin/nologin\n' > /out/passwd \
 && printf 'authsvc:x:65532:\n' > /out/group

# PostgREST for docker-compose.yaml (build target "postgrest"): the released
# image of exactly the version every test runs (PostgREST 12.0.2; tests/compose
# fails if this line and the stack runner's version differ), plus the health
# check binary, because the image has no shell and 12.0.2 has no
# `postgrest --ready`. Its admin server (/live, /ready only) listens beside
# the API on port 3001.
FROM postgrest/postgrest:v12.0.2 AS postgrest
COPY --from=build /out/zsm-healthcheck /usr/local/bin/zsm-healthcheck
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/zsm-healthcheck", "http://127.0.0.1:3001/ready"]

# authsvc (the default, last stage).
FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/passwd /etc/passwd
COPY --from=build /out/group /etc/group
COPY --from=build /out/authsvc /usr/local/bin/authsvc
COPY --from=build /out/zsm-healthcheck /usr/local/bin/zsm-healthcheck
USER 65532:65532
ENV AUTHSVC_LISTEN=0.0.0.0:8081
EXPOSE 8081
# /readyz: PostgreSQL, Redis and the signing keys are usable.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/zsm-healthcheck", "http://127.0.0.1:8081/readyz"]
ENTRYPOINT ["/usr/local/bin/authsvc"]
CMD ["serve"]
