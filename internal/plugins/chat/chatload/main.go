// Command chatload is the chat plugin's load generator (make bench-chat).
// It runs each scenario against the real twistd binary, started as a
// separate process, and against a baseline server in the same run: a
// minimal chat server written straight on net.Conn (goroutine per
// connection, fan-out by writing to each peer in turn under a lock), run
// by re-executing chatload itself. Server redisN is N twistd instances
// sharing one redis-server (started here, persistence off): clients are
// spread over the instances in turn, the broadcast sender is on the
// first, and each single-scenario pair has its two ends on different
// instances, so the figures beside server=twistd are the cost of Redis.
// -servers parked adds the same server
// with a parked writer goroutine per peer draining a coalescing queue
// (writev), the shape the reactor's output queue takes.
//
// -sources N spreads every scenario's client connections over the source
// addresses 127.0.0.1 to 127.0.0.N (Linux routes all of 127/8 to lo), for
// more clients than one address has ephemeral ports (about 28,000), and so
// that the TIME_WAIT sockets of earlier runs do not slow connecting.
//
// Scenarios, each bounded in count and time:
//
//	hold       N clients log in and send heartbeats; report the server's
//	           RSS (VmRSS) and RSS per connection
//	idle       hold at each of -idle-counts, on twistd and on the
//	           baseline (whatever -servers says), each server started
//	           fresh per count; then a table of RSS and RSS per client
//	           for the README
//	broadcast  one sender, R receivers: delivered messages/s, p50/p99
//	single     P pairs chatting: messages/s, p50/p99
//	badframes  a client sends -bad-frames spoofed broadcasts (403 each),
//	           reconnecting whenever the server closes it, and the
//	           server's log bytes and lines are reported (twistd only)
//	stall      -stalled clients each send all but 536 bytes of a
//	           65,536-byte frame and stop: the server's RSS while they
//	           hold it, and how long until it drops them
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twistd-go/twistd/internal/plugins/chat/client"
	"github.com/twistd-go/twistd/internal/plugins/chat/wire"
	"github.com/twistd-go/twistd/internal/reactor"
)

var (
	bin        = flag.String("bin", "bin/twistd", "twistd binary to measure")
	only       = flag.String("scenario", "hold,broadcast,single", "scenarios to run")
	servers    = flag.String("servers", "baseline,twistd", "servers to measure: baseline, parked, twistd, redisN (N instances on one redis-server); idle always measures twistd and baseline")
	clients    = flag.Int("clients", 10000, "hold: concurrent logged-in clients")
	hold       = flag.Duration("hold", 15*time.Second, "hold, idle: how long to keep them heartbeating before reading RSS")
	warmUp     = flag.Int("warm-up", 200, "hold, idle: clients logged in and out before the first RSS reading")
	idleCounts = flag.String("idle-counts", "1000,10000,19000", "idle: client counts, comma-separated")
	sources    = flag.Int("sources", 1, "client source addresses 127.0.0.1..127.0.0.N (1-254)")
	receivers  = flag.Int("receivers", 1000, "broadcast: receivers")
	broadcasts = flag.Int("broadcasts", 300, "broadcast: messages sent")
	pairs      = flag.Int("pairs", 100, "single: sender/receiver pairs")
	perPair    = flag.Int("messages", 500, "single: messages per pair")
	window     = flag.Int("window", 32, "messages a sender may have undelivered")
	limit      = flag.Duration("timeout", 60*time.Second, "bound on each scenario")
	badFrames  = flag.Int("bad-frames", 100000, "badframes: spoofed frames to send")
	stalled    = flag.Int("stalled", 2000, "stall: clients that stall in the middle of a frame")
	chatArgs   = flag.String("chat-args", "", "extra chat options for twistd, space-separated")
	baseline   = flag.String("baseline-listen", "", "internal: run the baseline server on this address")
	parkedKind = flag.Bool("baseline-parked", false, "internal: the baseline queues to a parked writer per peer")
)

func main() {
	flag.Parse()
	if *baseline != "" {
		if err := serveBaseline(*baseline, *parkedKind); err != nil {
			fmt.Fprintln(os.Stderr, "chatload baseline:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "chatload:", err)
		os.Exit(1)
	}
}

var scenarios = map[string]func(context.Context, *server) (string, error){
	"hold": runHold, "broadcast": runBroadcast, "single": runSingle,
	"badframes": runBadFrames, "stall": runStall,
}

func run() error {
	if *sources < 1 || *sources > 254 {
		return fmt.Errorf("-sources %d: want 1 to 254 (127.0.0.1 to 127.0.0.254)", *sources)
	}
	counts, err := parseCounts(*idleCounts)
	if err != nil {
		return err
	}
	list := strings.Split(*only, ",")
	for _, sc := range list {
		if scenarios[sc] == nil && sc != "idle" {
			return fmt.Errorf("unknown scenario %q", sc)
		}
	}
	if err := raiseFileLimit(list, counts); err != nil {
		return err
	}
	for _, sc := range list {
		if sc == "idle" {
			if err := runIdle(counts); err != nil {
				return err
			}
			continue
		}
		for _, kind := range strings.Split(*servers, ",") {
			line, err := withServer(kind, scenarios[sc])
			if err != nil {
				return fmt.Errorf("%s on %s: %w", sc, kind, err)
			}
			fmt.Printf("%-9s server=%-8s %s\n", sc, kind, line)
		}
	}
	return nil
}

// withServer starts a fresh server of kind, runs f against it within
// -timeout and stops the server (by PID, however f ended).
func withServer(kind string, f func(context.Context, *server) (string, error)) (string, error) {
	srv, err := startServer(kind)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *limit)
	line, err := f(ctx, srv)
	cancel()
	if serr := srv.stop(); err == nil {
		err = serr
	}
	if srv.logDir != "" {
		os.RemoveAll(srv.logDir)
	}
	return line, err
}

func parseCounts(list string) ([]int, error) {
	var counts []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 {
			return nil, fmt.Errorf("-idle-counts %q: want client counts of at least 2, comma-separated", list)
		}
		counts = append(counts, n)
	}
	return counts, nil
}

// fdSpare is what chatload keeps open besides its clients (the servers'
// pipes, the probe connection, the runtime's own).
const fdSpare = 100

// raiseFileLimit lifts the soft descriptor limit to the hard one (the
// servers started from here inherit it), after checking that the hard
// limit holds the most clients one of the scenarios keeps open at once.
func raiseFileLimit(list []string, counts []int) error {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return err
	}
	need, what := 0, ""
	for _, sc := range list {
		n, flag := 0, ""
		switch sc {
		case "hold":
			n, flag = *clients, "-clients"
		case "idle":
			n, flag = slices.Max(counts), "-idle-counts"
		case "broadcast":
			n, flag = *receivers+1, "-receivers"
		case "single":
			n, flag = 2**pairs, "-pairs"
		case "stall":
			n, flag = *stalled, "-stalled"
		}
		if n > need {
			need, what = n, fmt.Sprintf("%s needs %d descriptors for %d clients (lower %s)", sc, n+fdSpare, n, flag)
		}
	}
	if r.Max < uint64(need+fdSpare) {
		return fmt.Errorf("hard limit on open files is %d; %s", r.Max, what)
	}
	r.Cur = r.Max
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
}

type server struct {
	kind string
	addr string
	// addrs are where clients connect in turn: addr, or every instance
	// of a cluster, whose processes are parts (redis-server first).
	addrs  []string
	parts  []*server
	logDir string // twistd's log, removed after the scenario
	cmd    *exec.Cmd
	done   chan error

	stopOnce sync.Once
	stopErr  error
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startServer(kind string) (*server, error) {
	if n, ok := strings.CutPrefix(kind, "redis"); ok {
		return startCluster(kind, n)
	}
	return startProcess(kind, nil)
}

// startProcess starts one server process; extra are more chat options
// for twistd.
func startProcess(kind string, extra []string) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	var cmd *exec.Cmd
	var logDir string
	switch kind {
	case "twistd":
		if logDir, err = os.MkdirTemp("", "chatload-log-"); err != nil {
			return nil, err
		}
		// Rotation keeps 10 files of 1 MiB by default; a large size keeps
		// every line for counting.
		args := []string{"-n", "--logfile", logDir + "/twistd.log", "--logfile-max-size", "1024", "--pidfile", logDir + "/twistd.pid", "chat", "--port", port, "--iface", "127.0.0.1", "--heartbeat-timeout", "30s"}
		args = append(args, extra...)
		cmd = exec.Command(*bin, append(args, strings.Fields(*chatArgs)...)...)
	case "baseline", "parked":
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cmd = exec.Command(self, "-baseline-listen", addr, fmt.Sprintf("-baseline-parked=%v", kind == "parked"))
	case "redis-server":
		cmd = exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning")
	default:
		return nil, fmt.Errorf("unknown server %q", kind)
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	killWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{kind: kind, addr: addr, addrs: []string{addr}, logDir: logDir, cmd: cmd, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("%s server exited: %v", kind, err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return nil, fmt.Errorf("%s server not listening on %s", kind, addr)
		}
	}
}

// stop ends the server with SIGTERM; twistd must exit 0 within 30 s. Only
// the first call acts.
func (s *server) stop() error {
	s.stopOnce.Do(func() {
		if s.parts != nil {
			s.stopErr = stopParts(s.parts)
			return
		}
		s.stopErr = s.terminate()
	})
	return s.stopErr
}

func (s *server) terminate() error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if s.kind == "twistd" && err != nil {
			return fmt.Errorf("twistd exit: %v", err)
		}
		return nil
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		return errors.New("server did not stop within 30 s")
	}
}

// rss returns the server's resident set in bytes.
func (s *server) rss() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// usage is what the server's processes have used so far: CPU time (user
// and system, from /proc/PID/stat) and read and write system calls (from
// /proc/PID/io); zero where it cannot be read.
type usage struct {
	cpu          time.Duration
	syscr, syscw int64
}

func (u usage) sub(v usage) usage { return usage{u.cpu - v.cpu, u.syscr - v.syscr, u.syscw - v.syscw} }

// per formats u divided among n deliveries: CPU nanoseconds and write
// system calls per delivery.
func (u usage) per(n int) string {
	return fmt.Sprintf("server_cpu_ns=%.0f server_writes=%.3f", float64(u.cpu.Nanoseconds())/float64(n), float64(u.syscw)/float64(n))
}

func (s *server) usage() usage {
	if s.parts != nil {
		var sum usage
		for _, p := range s.parts {
			u := p.usage()
			sum = usage{sum.cpu + u.cpu, sum.syscr + u.syscr, sum.syscw + u.syscw}
		}
		return sum
	}
	var u usage
	pid := s.cmd.Process.Pid
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// The command name may hold spaces; the fields after it do not.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 {
			if f := strings.Fields(string(b[i+1:])); len(f) >= 13 {
				utime, _ := strconv.ParseInt(f[11], 10, 64)
				stime, _ := strconv.ParseInt(f[12], 10, 64)
				u.cpu = time.Duration(utime+stime) * time.Second / clockTicks
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "syscr: "); ok {
				u.syscr, _ = strconv.ParseInt(v, 10, 64)
			} else if v, ok := strings.CutPrefix(l, "syscw: "); ok {
				u.syscw, _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return u
}

// clockTicks is the kernel's USER_HZ, in which /proc/PID/stat counts CPU
// time: 100 on every Linux architecture Go supports.
const clockTicks = 100

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// dialers returns one dial function per -sources address, or nil (the
// default dialer) for one source.
func dialers() []func(context.Context, string, string) (net.Conn, error) {
	if *sources == 1 {
		return []func(context.Context, string, string) (net.Conn, error){nil}
	}
	ds := make([]func(context.Context, string, string) (net.Conn, error), *sources)
	for i := range ds {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(i+1))}}
		ds[i] = d.DialContext
	}
	return ds
}

// connect starts n clients with ids prefix0..n-1, client i on
// addrs[i % len(addrs)] from source address i % -sources, and waits until
// all are logged in, at most 200 connecting at once.
func connect(ctx context.Context, addrs []string, prefix string, n int, hb time.Duration, handler func(i int) func(wire.Frame)) ([]*client.Client, error) {
	cs := make([]*client.Client, n)
	dial := dialers()
	sem := make(chan struct{}, 200)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		c, err := client.New("load", client.Config{
			Network: "tcp", Address: addrs[i%len(addrs)], ID: fmt.Sprintf(`"%s%d"`, prefix, i),
			Heartbeat: hb, Handler: handler(i), Log: discard, ReadBufferSize: 2048,
			Policy: reactor.BackoffPolicy(50*time.Millisecond, 2, time.Second, nil),
			Dial:   dial[i%len(dial)],
		})
		if err != nil {
			return nil, err
		}
		cs[i] = c
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c.Start(ctx)
			if err := c.LoggedIn(ctx); err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		stopAll(cs)
		return nil, err
	}
	return cs, nil
}

func stopAll(cs []*client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 500)
	for _, c := range cs {
		if c == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() { defer func() { <-sem }(); c.Stop(ctx) })
	}
	wg.Wait()
}

// held is what holding n logged-in, heartbeating clients measured.
type held struct {
	n             int
	before, after int64 // the server's VmRSS before the clients and after -hold
	connect       time.Duration
	reached       int64 // clients the roll call found logged in, the sender included
}

// perClient is the RSS the clients added, in KiB each.
func (h held) perClient() float64 { return float64(h.after-h.before) / float64(h.n) / 1024 }

func (h held) String() string {
	return fmt.Sprintf("clients=%d held=%s all_reached=%d connect_time=%v logins_per_s=%.0f rss_idle=%.1fMiB rss=%.1fMiB rss_per_conn=%.1fKiB",
		h.n, *hold, h.reached, h.connect.Round(time.Millisecond), float64(h.n)/h.connect.Seconds(), mib(h.before), mib(h.after), h.perClient())
}

func runHold(ctx context.Context, s *server) (string, error) {
	h, err := holdClients(ctx, s, *clients)
	if err != nil {
		return "", err
	}
	return h.String(), nil
}

// holdClients logs n clients in, each heartbeating every second, keeps
// them for -hold and reads the server's RSS; then one broadcasts a roll
// call that must reach every other client.
func holdClients(ctx context.Context, s *server, n int) (held, error) {
	h := held{n: n}
	// The first clients of a fresh process pay for what any server pays
	// once (code paged in, the runtime's first heap arenas); a warm-up
	// round of logins before the first reading leaves the clients held
	// after it with their own cost only.
	if *warmUp > 0 {
		ws, err := connect(ctx, s.addrs, "w", *warmUp, time.Second, func(int) func(wire.Frame) { return func(wire.Frame) {} })
		if err != nil {
			return h, fmt.Errorf("warm-up: %w", err)
		}
		stopAll(ws)
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return h, ctx.Err()
		}
	}
	var err error
	if h.before, err = s.rss(); err != nil {
		return h, err
	}
	var got atomic.Int64
	start := time.Now()
	cs, err := connect(ctx, s.addrs, "h", n, time.Second, func(int) func(wire.Frame) {
		return func(f wire.Frame) {
			if f.Command == wire.CmdBroadcastMsg {
				got.Add(1)
			}
		}
	})
	if err != nil {
		return h, err
	}
	defer stopAll(cs)
	h.connect = time.Since(start)
	// Heartbeats flow (one per client per second) while the clients hold.
	select {
	case <-time.After(*hold):
	case <-ctx.Done():
		return h, ctx.Err()
	}
	if h.after, err = s.rss(); err != nil {
		return h, err
	}
	// Every client must still be logged in: a broadcast reaches n-1.
	if err := cs[0].Broadcast(ctx, "roll call"); err != nil {
		return h, err
	}
	if err := waitUntil(ctx, func() bool { return got.Load() >= int64(n-1) }); err != nil {
		return h, fmt.Errorf("roll call reached %d of %d", got.Load(), n-1)
	}
	h.reached = got.Load() + 1
	return h, nil
}

// runIdle holds each count of clients on twistd and on the baseline, a
// fresh server for each, and prints the lines and then the table.
func runIdle(counts []int) error {
	kinds := []string{"twistd", "baseline"}
	rows := make([][]held, len(counts))
	for i, n := range counts {
		for _, kind := range kinds {
			var h held
			line, err := withServer(kind, func(ctx context.Context, s *server) (string, error) {
				var err error
				h, err = holdClients(ctx, s, n)
				return h.String(), err
			})
			if err != nil {
				return fmt.Errorf("idle %d on %s: %w", n, kind, err)
			}
			fmt.Printf("%-9s server=%-8s %s\n", "idle", kind, line)
			rows[i] = append(rows[i], h)
		}
	}
	fmt.Printf("\nidle clients, heartbeat every second, server RSS after %s (per client: RSS added / clients)\n", *hold)
	fmt.Println("| clients | twistd RSS | per client | goroutine-per-connection baseline | per client | twistd/baseline |")
	fmt.Println("| ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range rows {
		t, b := r[0], r[1]
		ratio := "-" // a few clients may add no page to the baseline's RSS
		if b.perClient() > 0 {
			ratio = fmt.Sprintf("%.2f", t.perClient()/b.perClient())
		}
		fmt.Printf("| %s | %.1f MiB | %.2f KiB | %.1f MiB | %.2f KiB | %s |\n",
			thousands(t.n), mib(t.after), t.perClient(), mib(b.after), b.perClient(), ratio)
	}
	return nil
}

// thousands writes n with comma separators, as the README's tables do.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// stamp puts the send time into the message content.
func stamp(seq int) string {
	return strconv.Itoa(seq) + " " + strconv.FormatInt(time.Now().UnixNano(), 10)
}

// unstamp reads seq and latency from a delivered body
// {"chat_from":..,"chat_content":"SEQ NANOS"}.
func unstamp(body []byte) (int, time.Duration, bool) {
	i := strings.LastIndex(string(body), `"chat_content":"`)
	if i < 0 {
		return 0, 0, false
	}
	rest := string(body[i+len(`"chat_content":"`):])
	seqS, nanoS, ok := strings.Cut(strings.TrimSuffix(rest, `"}`), " ")
	seq, err1 := strconv.Atoi(seqS)
	nanos, err2 := strconv.ParseInt(nanoS, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return seq, time.Duration(time.Now().UnixNano() - nanos), true
}

type latencies struct {
	mu  sync.Mutex
	all []time.Duration
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, d...)
	l.mu.Unlock()
}

func (l *latencies) pct(p float64) time.Duration {
	slices.Sort(l.all)
	if len(l.all) == 0 {
		return 0
	}
	return l.all[min(len(l.all)-1, int(p*float64(len(l.all))))]
}

func runBroadcast(ctx context.Context, s *server) (string, error) {
	r, m := *receivers, *broadcasts
	delivered := make([]atomic.Int32, m) // per message, receivers reached
	per := make([][]time.Duration, r)
	rcv, err := connect(ctx, s.addrs, "r", r, -1, func(i int) func(wire.Frame) {
		return func(f wire.Frame) {
			if seq, lat, ok := unstamp(f.Body); ok && f.Command == wire.CmdBroadcastMsg && seq < m {
				per[i] = append(per[i], lat)
				delivered[seq].Add(1)
			}
		}
	})
	if err != nil {
		return "", err
	}
	defer stopAll(rcv)
	snd, err := connect(ctx, s.addrs[:1], "s", 1, -1, func(int) func(wire.Frame) { return nil })
	if err != nil {
		return "", err
	}
	defer stopAll(snd)
	start, use0 := time.Now(), s.usage()
	for seq := range m {
		// At most -window messages not yet at every receiver.
		if err := waitUntil(ctx, func() bool { return seq < *window || delivered[seq-*window].Load() == int32(r) }); err != nil {
			return "", fmt.Errorf("message %d: %w", seq-*window, err)
		}
		if err := snd[0].Broadcast(ctx, stamp(seq)); err != nil {
			return "", err
		}
	}
	if err := waitUntil(ctx, func() bool { return delivered[m-1].Load() == int32(r) }); err != nil {
		return "", fmt.Errorf("last message reached %d of %d", delivered[m-1].Load(), r)
	}
	elapsed, use := time.Since(start), s.usage().sub(use0)
	stopAll(rcv) // handlers are done before per is read
	var l latencies
	for _, p := range per {
		l.add(p)
	}
	return fmt.Sprintf("receivers=%d window=%d messages=%d delivered=%d delivered_per_s=%.0f p50=%v p99=%v %s",
		r, *window, m, len(l.all), float64(len(l.all))/elapsed.Seconds(), l.pct(0.5).Round(time.Microsecond), l.pct(0.99).Round(time.Microsecond), use.per(len(l.all))), nil
}

func runSingle(ctx context.Context, s *server) (string, error) {
	p, k := *pairs, *perPair
	got := make([]atomic.Int32, p)
	per := make([][]time.Duration, p)
	rcv, err := connect(ctx, s.addrs, "b", p, -1, func(i int) func(wire.Frame) {
		return func(f wire.Frame) {
			if _, lat, ok := unstamp(f.Body); ok && f.Command == wire.CmdSingleMsg {
				per[i] = append(per[i], lat)
				got[i].Add(1)
			}
		}
	})
	if err != nil {
		return "", err
	}
	defer stopAll(rcv)
	snd, err := connect(ctx, append(s.addrs[1:], s.addrs[0]), "a", p, -1, func(int) func(wire.Frame) { return nil })
	if err != nil {
		return "", err
	}
	defer stopAll(snd)
	start, use0 := time.Now(), s.usage()
	errs := make(chan error, p)
	var wg sync.WaitGroup
	for i := range p {
		wg.Go(func() {
			to := fmt.Sprintf(`"b%d"`, i)
			for seq := range k {
				if err := waitUntil(ctx, func() bool { return int(got[i].Load()) > seq-*window }); err != nil {
					errs <- err
					return
				}
				if err := snd[i].Single(ctx, to, stamp(seq)); err != nil {
					errs <- err
					return
				}
			}
			if err := waitUntil(ctx, func() bool { return int(got[i].Load()) == k }); err != nil {
				errs <- fmt.Errorf("pair %d: %d of %d delivered", i, got[i].Load(), k)
			}
		})
	}
	wg.Wait()
	elapsed, use := time.Since(start), s.usage().sub(use0)
	close(errs)
	if err := <-errs; err != nil {
		return "", err
	}
	stopAll(rcv)
	var l latencies
	for _, d := range per {
		l.add(d)
	}
	return fmt.Sprintf("pairs=%d window=%d messages=%d msgs_per_s=%.0f p50=%v p99=%v %s",
		p, *window, len(l.all), float64(len(l.all))/elapsed.Seconds(), l.pct(0.5).Round(time.Microsecond), l.pct(0.99).Round(time.Microsecond), use.per(len(l.all))), nil
}

// waitUntil polls cond (the load generator's progress counters) until it
// holds or ctx ends.
func waitUntil(ctx context.Context, cond func() bool) error {
	for spins := 0; !cond(); spins++ {
		if spins < 100 {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Microsecond):
		}
	}
	return nil
}

// bpeer is a baseline connection: written straight, or with parked set
// through a queue its writer goroutine drains.
type bpeer struct {
	net.Conn
	parked bool
	mu     sync.Mutex
	wake   sync.Cond
	q      net.Buffers
	done   bool
}

func (p *bpeer) send(b []byte) {
	if !p.parked {
		p.Write(b)
		return
	}
	p.mu.Lock()
	p.q = append(p.q, b)
	p.wake.Signal()
	p.mu.Unlock()
}

// writer drains the queue, everything queued in one writev, and parks on
// wake while it is empty.
func (p *bpeer) writer() {
	var batch net.Buffers
	for {
		p.mu.Lock()
		for len(p.q) == 0 && !p.done {
			p.wake.Wait()
		}
		if p.done {
			p.mu.Unlock()
			return
		}
		batch, p.q = p.q, batch[:0]
		p.mu.Unlock()
		b := batch
		if _, err := b.WriteTo(p.Conn); err != nil {
			p.Close()
		}
		clear(batch)
	}
}

func (p *bpeer) end() {
	p.mu.Lock()
	p.done = true
	p.wake.Signal()
	p.mu.Unlock()
}

// serveBaseline is the comparison server: the same frames, parsed by the
// same decoder, but a goroutine per connection writing straight to each
// recipient's net.Conn under one lock, as a first implementation would
// (or, parked, queueing to each recipient's writer goroutine).
func serveBaseline(addr string, parked bool) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	users := map[string]*bpeer{}
	go func() {
		sig := make(chan os.Signal, 1)
		signalNotify(sig)
		<-sig
		os.Exit(0)
	}()
	for {
		nc, err := ln.Accept()
		if err != nil {
			return err
		}
		c := &bpeer{Conn: nc, parked: parked}
		c.wake.L = &c.mu
		if parked {
			go c.writer()
		}
		go func() {
			defer c.Close()
			defer c.end()
			var d wire.Decoder
			var me string
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				if err != nil {
					mu.Lock()
					if users[me] == c {
						delete(users, me)
					}
					mu.Unlock()
					return
				}
				d.Feed(buf[:n], func(f wire.Frame) bool {
					switch f.Command {
					case wire.CmdVerify:
						var v wire.Verify
						if json.Unmarshal(f.Body, &v) == nil {
							id, _ := wire.ParseID(v.PhoneNumber)
							me = id.Key
							mu.Lock()
							users[me] = c
							mu.Unlock()
							c.send(wire.AppendFrame(nil, f.Version, wire.CmdVerifyResult, []byte(`{"code":1}`)))
						}
					case wire.CmdSingle, wire.CmdBroadcast:
						var m wire.Chat
						if json.Unmarshal(f.Body, &m) != nil {
							return true
						}
						out := wire.AppendFrame(nil, f.Version, f.Command+100, wire.AppendDelivered(nil, m.From, m.Content))
						mu.Lock()
						if f.Command == wire.CmdSingle {
							to, _ := wire.ParseID(m.To)
							if u := users[to.Key]; u != nil {
								u.send(out)
							}
						} else {
							for id, u := range users {
								if id != me {
									u.send(out)
								}
							}
						}
						mu.Unlock()
					}
					return true
				})
			}
		}()
	}
}
