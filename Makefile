# twistd — build, test, lint, bench. `make run` and `make test` are the two
# commands the README promises work on a fresh machine.
GO      ?= go
BIN     := bin/twistd
PORT    ?= 10000
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/twistd-go/twistd/internal/app.Version=$(VERSION)

.PHONY: build run test test-short lint bench bench-ftp man clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/twistd

# Serves the shipped poem on 127.0.0.1:$(PORT) in the foreground; Ctrl-C stops.
run: build
	./$(BIN) --nodaemon --logfile - fastpoetry --port $(PORT) --iface 127.0.0.1 --poem configs/poem.txt

test: lint
	$(GO) test -race -count=1 -timeout 15m ./...

test-short:
	$(GO) test -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Benchmarks compare each server with a bare stdlib server in the same run.
bench: bench-ftp
	$(GO) test -run '^$$' -bench . -benchtime 3s -count 5 ./... | tee bench.out

# ftp-lite against vsftpd (Debian package vsftpd) with curl, in one run:
# RETR 1 GiB, STOR 256 MiB, LIST of 10,000 files; medians and ratios.
bench-ftp:
	FTP_BENCH=1 $(GO) test -run '^$$' -bench FTP -benchtime 15x -count 1 ./internal/plugins/ftplite/ | tee bench-ftp.out

# Man pages from the cobra command tree (dated by SOURCE_DATE_EPOCH, or a
# fixed date); cmd/gen-man's test fails when man/ is stale.
man:
	$(GO) run ./cmd/gen-man man

clean:
	rm -rf bin bench.out bench-ftp.out
