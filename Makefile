# mailproxy developer tasks. `make check` is clean at every commit.
GO ?= go
STATICCHECK_VERSION ?= v0.8.2

.PHONY: build test check fmt vet staticcheck bench run

# Version and commit stamped into the binary (`mail-proxy version`); the Dockerfile passes the same.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X github.com/mailproxy/mailproxy/internal/cli.version=$(VERSION) -X github.com/mailproxy/mailproxy/internal/cli.commit=$(COMMIT)

build:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o bin/mail-proxy ./cmd/mail-proxy
	CGO_ENABLED=0 $(GO) build -o bin/example-client ./cmd/example-client

# The whole suite (README's test command). PostgreSQL tests run when
# MAILPROXY_TEST_PG_DSN is set (or 127.0.0.1:5432 answers); .ci/run requires them.
test:
	$(GO) test -race -shuffle=on -timeout 8m ./...

check: fmt vet staticcheck

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	@command -v staticcheck >/dev/null || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	staticcheck ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./internal/...

run:
	$(GO) run ./cmd/mail-proxy serve
