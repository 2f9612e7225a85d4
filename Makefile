# twistd — build, test, lint, bench. `make run` and `make test` are the two
# commands the README promises work on a fresh machine.
GO      ?= go
BIN     := bin/twistd
PORT    ?= 10000
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/twistd-go/twistd/internal/app.Version=$(VERSION)

# Where `make install` puts things; DESTDIR stages the tree elsewhere (for a
# package), while the paths written into the units stay those below.
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
MANDIR  ?= $(DATADIR)/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
COMPLETIONS = $(dir $(BIN))completion
INSTALLED = $(BINDIR)/twistd $(addprefix $(MANDIR)/man1/,$(notdir $(wildcard man/*.1))) \
	$(DATADIR)/bash-completion/completions/twistd $(DATADIR)/zsh/site-functions/_twistd \
	$(DATADIR)/fish/vendor_completions.d/twistd.fish $(DATADIR)/twistd/poem.txt \
	$(addprefix $(UNITDIR)/,$(notdir $(wildcard configs/systemd/*)))

.PHONY: build run test api deps test-short lint bench bench-fastpoetry bench-metrics bench-chat bench-ftp fuzz man clean \
	completion install uninstall

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/twistd

# Shell completion scripts, written by the built binary itself, so they
# know its plugins and flags.
completion: build
	@mkdir -p $(COMPLETIONS)
	$(abspath $(BIN)) completion bash > $(COMPLETIONS)/twistd.bash
	$(abspath $(BIN)) completion zsh > $(COMPLETIONS)/_twistd
	$(abspath $(BIN)) completion fish > $(COMPLETIONS)/twistd.fish

# The binary, man pages, completion for bash, zsh and fish, the example
# poem and the systemd units (their /usr/local paths rewritten for PREFIX).
install: build completion
	install -d $(addprefix $(DESTDIR),$(BINDIR) $(MANDIR)/man1 $(DATADIR)/bash-completion/completions \
	  $(DATADIR)/zsh/site-functions $(DATADIR)/fish/vendor_completions.d $(DATADIR)/twistd $(UNITDIR))
	install -m 755 $(BIN) $(DESTDIR)$(BINDIR)/twistd
	install -m 644 man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 $(COMPLETIONS)/twistd.bash $(DESTDIR)$(DATADIR)/bash-completion/completions/twistd
	install -m 644 $(COMPLETIONS)/_twistd $(DESTDIR)$(DATADIR)/zsh/site-functions/_twistd
	install -m 644 $(COMPLETIONS)/twistd.fish $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/twistd.fish
	install -m 644 configs/poem.txt $(DESTDIR)$(DATADIR)/twistd/poem.txt
	@set -e; for u in configs/systemd/*; do \
	  echo "$$u -> $(DESTDIR)$(UNITDIR)/ (naming $(BINDIR)/ and $(DATADIR)/)"; \
	  sed -e 's|/usr/local/bin/|$(BINDIR)/|g' -e 's|/usr/local/share/|$(DATADIR)/|g' $$u > $(DESTDIR)$(UNITDIR)/$${u##*/}; \
	  chmod 644 $(DESTDIR)$(UNITDIR)/$${u##*/}; \
	done

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))

# Serves the shipped poem on 127.0.0.1:$(PORT) in the foreground; Ctrl-C stops.
run: build
	./$(BIN) --nodaemon --logfile - fastpoetry --port $(PORT) --iface 127.0.0.1 --poem configs/poem.txt

# Installs the test dependencies first where it can (root on Debian), or
# names the missing ones; tests whose client is missing skip.
test: deps lint
	$(GO) test -race -count=1 -timeout 15m ./...
	@# The example module needs every module this one does: a dependency
	@# added here without `cd examples/qotd && go mod tidy` fails here.
	$(GO) mod tidy -diff
	cd examples/qotd && $(GO) mod tidy -diff && $(GO) vet ./... && $(GO) test -count=1 ./...

# The public API snapshot (testdata/api.txt), after a change that is meant.
api:
	UPDATE_API=1 $(GO) test -count=1 -run TestPublicAPIUnchanged .

deps:
	@tools/deps.sh || echo "deps: installing failed; the tests that need what is missing will skip"

test-short:
	$(GO) test -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Benchmarks compare each server with a bare stdlib server in the same run;
# the table gives medians over the runs and twistd/bare ratios.
# bench-chat and bench-ftp drive the real binary against their baselines.
bench: bench-chat bench-ftp
	$(GO) test -run '^$$' -bench . -benchtime 2s -count 5 ./... | tee bench.out
	@awk -f tools/benchtable.awk bench.out

# fastpoetry alone (connections per second, 1 and 64 clients, beside a bare
# stdlib server in alternating rounds): 10 runs of 40,000 connections each,
# under a minute.
bench-fastpoetry:
	$(GO) test -run '^$$' -bench Connections -benchtime 40000x -count 10 ./internal/plugins/fastpoetry/ | tee bench-fastpoetry.out
	@awk -f tools/benchtable.awk bench-fastpoetry.out

# What --metrics costs: fastpoetry with and without a registry counting its
# connections, side by side in alternating rounds (64 clients); 10 runs of
# 40,000 connections, and the median ratio with/without (issue 16: >= 0.97).
bench-metrics:
	$(GO) test -run '^$$' -bench MetricsCost -benchtime 40000x -count 10 ./internal/plugins/fastpoetry/ | tee bench-metrics.out
	@awk '/^BenchmarkMetricsCost/ { for (i = 2; i < NF; i++) if ($$(i + 1) == "ratio") r[++n] = $$i } \
	  END { for (i = 2; i <= n; i++) for (j = i; j > 1 && r[j - 1] > r[j]; j--) { t = r[j]; r[j] = r[j - 1]; r[j - 1] = t } \
	  printf "median ratio with/without metrics over %d runs: %.3f\n", n, n % 2 ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2 }' bench-metrics.out

# ftp-lite against vsftpd (Debian package vsftpd) with curl, in one run:
# RETR 1 GiB, STOR 256 MiB, LIST of 10,000 files; medians and ratios.
bench-ftp:
	FTP_BENCH=1 $(GO) test -run '^$$' -bench FTP -benchtime 15x -count 1 ./internal/plugins/ftplite/ | tee bench-ftp.out

# Man pages from the cobra command tree (dated by SOURCE_DATE_EPOCH, or a
# fixed date); cmd/gen-man's test fails when man/ is stale.
man:
	$(GO) run ./cmd/gen-man man

# The chat plugin at scale, the real binary beside a baseline server on
# net.Conn (goroutine per connection): idle clients at each of CHAT_IDLE,
# heartbeating every second, on a fresh server per count (server RSS per
# client, logins per second, and a table for the README); broadcast to
# 1,000 at windows 4 and 16; 100 pairs. The broadcast and the pairs also
# run on the baseline with a parked writer goroutine per peer draining a
# coalescing queue (parked), the fair comparison for a server that never
# blocks on a slow peer. With redis-server on PATH they also run on two
# instances joined on Redis (clients split over them, cross-instance pairs).
# Runs of a few seconds each: a run of 300 broadcasts lasts a third of a
# second, and its ratios swing from 0.7 to 1.3 here.
CHAT_SERVERS ?= baseline,parked,twistd$(if $(shell command -v redis-server),$(comma)redis2)
# The clients come from 127.0.0.1 to 127.0.0.8: from one address, the idle
# rows' closed connections (TIME_WAIT) crowd its ephemeral ports and the
# 19,000 row's logins per second measure the kernel's search for a free
# port (4,000/s instead of 12,000/s here).
CHAT_IDLE ?= 1000,10000,19000
CHAT_SOURCES ?= 8
comma := ,
bench-chat: build
	@set -e; rm -f bench-chat.out; \
	for run in "idle,single -messages 5000" "broadcast -window 4 -broadcasts 2000" "broadcast -window 16 -broadcasts 2000"; do \
	  $(GO) run ./internal/plugins/chat/chatload -bin $(BIN) -servers $(CHAT_SERVERS) -idle-counts $(CHAT_IDLE) -sources $(CHAT_SOURCES) -scenario $$run > bench-chat.part; \
	  cat bench-chat.part; cat bench-chat.part >> bench-chat.out; \
	done; rm -f bench-chat.part

# A short run of every fuzz target beyond its seed corpus, FUZZTIME each
# (the seeds themselves run in `make test`). Minimizing a new input gets 1 s
# so the time goes to fuzzing.
FUZZTIME ?= 5s
FUZZ_TARGETS := \
	./internal/plugins/chat/wire:FuzzDecoder \
	./internal/plugins/chat/wire:FuzzParseID \
	./internal/plugins/chat/wire:FuzzParseChat \
	./internal/app/appfile:FuzzParse \
	./internal/plugins/ftplite/cmdline:FuzzSplitter \
	./internal/plugins/ftplite/jail:FuzzResolve \
	./internal/plugins/ftplite/jail:FuzzRootOpen \
	./internal/plugins/ftplite:FuzzSession
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; fn=$${t##*:}; echo "== $$fn ($$pkg)"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1s $$pkg; \
	done

clean:
	rm -rf bin bench.out bench-fastpoetry.out bench-metrics.out bench-chat.out bench-ftp.out
