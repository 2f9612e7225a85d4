package chat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	chatclient "github.com/twistd-go/twistd/internal/plugins/chat/client"
	"github.com/twistd-go/twistd/internal/plugins/chat/wire"
	"github.com/twistd-go/twistd/internal/testutil"
)

// testTTL is the presence TTL the cluster tests run with: short, so that
// the expiry of a killed instance's users is seen within the test.
const testTTL = 1500 * time.Millisecond

// redisServer is a real redis-server on a loopback port, persistence off.
type redisServer struct {
	t    testing.TB
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// startRedis starts redis-server, or skips the test if it is not
// installed; it is killed by PID at cleanup.
func startRedis(t testing.TB) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed (Debian package redis-server)")
	}
	r := &redisServer{t: t, port: testutil.FreePort(t)}
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

// start runs redis-server on r.port and waits, bounded, until it answers.
func (r *redisServer) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	out := &testutil.Buffer{}
	r.cmd.Stdout, r.cmd.Stderr = out, out
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(r.cmd, r.done)
	c := r.client()
	defer c.Close()
	deadline := time.Now().Add(wait)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on port %d not answering after %v:\n%s", r.port, wait, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill ends redis-server by PID (SIGKILL: what a crash looks like).
func (r *redisServer) kill() {
	select {
	case <-r.done:
	default:
		r.cmd.Process.Kill()
		<-r.done
	}
}

func (r *redisServer) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port), MaxRetries: -1})
}

// instance is one `twistd chat --redis` process.
type instance struct {
	*testutil.Proc
	addr string
}

func startInstance(t *testing.T, r *redisServer, extra ...string) *instance {
	t.Helper()
	args := append([]string{"-n", "--logfile", "-", "chat", "--port", "0", "--iface", "127.0.0.1",
		"--redis", r.url(), "--presence-ttl", testTTL.String()}, extra...)
	p := testutil.Start(t, "", args...)
	p.WaitFor(t, "joined the instances on redis", wait)
	return &instance{Proc: p, addr: p.ListenAddr(t)}
}

// goClient logs id in on addr with the Go client and returns it, and its
// messages (frames after the verify result).
func goClient(t *testing.T, addr, id string) *chatclient.Client {
	t.Helper()
	c, err := chatclient.New("test", chatclient.Config{Network: "tcp", Address: addr, ID: id, Heartbeat: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		c.Stop(ctx)
	})
	if err := c.LoggedIn(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

// nextMessage returns the Go client's next frame, failing after the wait.
func nextMessage(t *testing.T, c *chatclient.Client) chatclient.Message {
	t.Helper()
	select {
	case m, ok := <-c.Messages():
		if !ok {
			t.Fatalf("client ended: %v", c.Err())
		}
		return m
	case <-time.After(wait):
		t.Fatal("no message")
	}
	return chatclient.Message{}
}

// TestRedisPythonClient runs the Python client's whole conversation with
// bob on a second instance: every direct, group and broadcast message to
// or from him, and his replaced login, cross instances.
func TestRedisPythonClient(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed (Debian package python3)")
	}
	r := startRedis(t)
	a, b := startInstance(t, r), startInstance(t, r)
	ha, pa, _ := net.SplitHostPort(a.addr)
	hb, pb, _ := net.SplitHostPort(b.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "testdata/chatclient.py", ha, pa, hb, pb).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("chatclient.py across two instances: %v\n%s", err, out)
	}
}

// TestRedisAcrossInstances checks direct, group and broadcast delivery
// over three instances, 410 for a recipient online nowhere, and the order
// of one sender's messages to one recipient on another instance.
func TestRedisAcrossInstances(t *testing.T) {
	r := startRedis(t)
	insts := []*instance{startInstance(t, r), startInstance(t, r), startInstance(t, r)}
	alice := loggedIn(t, insts[0].addr, `"alice"`)[0]
	bob := loggedIn(t, insts[1].addr, `"bob"`)[0]
	carol := loggedIn(t, insts[2].addr, `13800138000`)[0]
	dan := loggedIn(t, insts[0].addr, `"dan"`)[0]

	alice.send(1, wire.CmdSingle, `{"chat_from":"alice","chat_to":"bob","chat_content":"hi bob"}`)
	if m := bob.expect(1, wire.CmdSingle+100); m["chat_from"] != "alice" || m["chat_content"] != "hi bob" {
		t.Fatalf("bob got %v", m)
	}

	// A group over all three instances with one recipient online nowhere:
	// the others get it, the sender hears of that one only.
	bob.send(1, wire.CmdGroup, `{"chat_from":"bob","chat_to":["alice",13800138000,"dan","nobody"],"chat_content":"group"}`)
	for _, c := range []*client{alice, carol, dan} {
		if m := c.expect(1, wire.CmdGroup+100); m["chat_content"] != "group" {
			t.Fatalf("group member got %v", m)
		}
	}
	if m := bob.expectError(1, wire.CodeUndelivered); fmt.Sprint(m["undelivered"]) != "[nobody]" {
		t.Fatalf("410 lists %v, want [nobody]", m["undelivered"])
	}

	// A broadcast reaches everyone on every instance but the sender.
	carol.send(1, wire.CmdBroadcast, `{"chat_from":13800138000,"chat_content":"all"}`)
	for _, c := range []*client{alice, bob, dan} {
		if m := c.expect(1, wire.CmdBroadcast+100); m["chat_from"] != float64(13800138000) {
			t.Fatalf("broadcast got %v", m)
		}
	}
	for _, c := range []*client{alice, bob, carol, dan} {
		c.sync() // nothing else was queued: no duplicate, no echo to carol
	}

	// Order: the Go client on the first instance sends to one on the
	// second, mixing direct messages and broadcasts.
	erin := goClient(t, insts[0].addr, `"erin"`)
	frank := goClient(t, insts[1].addr, `"frank"`)
	const n = 2000
	ctx, cancel := context.WithTimeout(context.Background(), 4*wait)
	defer cancel()
	for i := range n {
		var err error
		if i%10 == 9 {
			err = erin.Broadcast(ctx, strconv.Itoa(i))
		} else {
			err = erin.Single(ctx, `"frank"`, strconv.Itoa(i))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		m := nextMessage(t, frank)
		want := fmt.Sprintf(`{"chat_from":"erin","chat_content":"%d"}`, i)
		if string(m.Body) != want {
			t.Fatalf("message %d: got %d %s, want %s", i, m.Command, m.Body, want)
		}
	}
}

// TestRedisReplaceAcrossInstances logs one ID in on two instances: the
// older session gets 409 and is closed, the newer receives its messages.
// The TTL is long, so the renewal (every 20 s) cannot be what closes it.
func TestRedisReplaceAcrossInstances(t *testing.T) {
	r := startRedis(t)
	a, b := startInstance(t, r, "--presence-ttl", "60s"), startInstance(t, r, "--presence-ttl", "60s")
	old := goClient(t, a.addr, `"dave"`)
	newer := goClient(t, b.addr, `"dave"`)
	select {
	case <-old.Done():
	case <-time.After(wait):
		t.Fatal("the older session was not closed")
	}
	if !errors.Is(old.Err(), chatclient.ErrReplaced) {
		t.Fatalf("older session ended with %v, want ErrReplaced (409)", old.Err())
	}
	sender := loggedIn(t, a.addr, `"eve"`)[0]
	sender.send(1, wire.CmdSingle, `{"chat_from":"eve","chat_to":"dave","chat_content":"to the new one"}`)
	if m := nextMessage(t, newer); !strings.Contains(string(m.Body), "to the new one") {
		t.Fatalf("newer session got %s", m.Body)
	}
	sender.sync()
	a.WaitFor(t, "ID logged in on another instance; closing this one", wait)
}

// TestRedisKilledInstance SIGKILLs an instance: messages to its users are
// undelivered at once, their IDs log in elsewhere at once, and their
// presence is gone from Redis within the presence TTL.
func TestRedisKilledInstance(t *testing.T) {
	r := startRedis(t)
	a, b := startInstance(t, r), startInstance(t, r)
	loggedIn(t, a.addr, `"alice"`, `"zed"`)
	bob := loggedIn(t, b.addr, `"bob"`)[0]
	rc := r.client()
	defer rc.Close()
	ctx := context.Background()
	if n, _ := rc.Exists(ctx, redisPrefix+"user:zed").Result(); n != 1 {
		t.Fatal("zed's presence key missing before the kill")
	}

	a.Signal(t, syscall.SIGKILL)
	a.Wait(t, wait)
	killed := time.Now()

	// Nobody subscribes to the dead instance's channel any more.
	bob.send(1, wire.CmdSingle, `{"chat_from":"bob","chat_to":"alice","chat_content":"there?"}`)
	if m := bob.expectError(1, wire.CodeUndelivered); fmt.Sprint(m["undelivered"]) != "[alice]" {
		t.Fatalf("410 lists %v", m["undelivered"])
	}
	alice := loggedIn(t, b.addr, `"alice"`)[0]
	bob.send(1, wire.CmdSingle, `{"chat_from":"bob","chat_to":"alice","chat_content":"welcome back"}`)
	if m := alice.expect(1, wire.CmdSingle+100); m["chat_content"] != "welcome back" {
		t.Fatalf("alice got %v", m)
	}

	// The bound: the TTL after the last renewal, which was at most a
	// third of it before the kill.
	for {
		n, err := rc.Exists(ctx, redisPrefix+"user:zed").Result()
		if err == nil && n == 0 {
			break
		}
		if time.Since(killed) > testTTL+500*time.Millisecond {
			t.Fatalf("zed still present %v after the kill (TTL %v)", time.Since(killed), testTTL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("zed's presence expired %v after the kill (TTL %v)", time.Since(killed).Round(time.Millisecond), testTTL)
}

// TestRedisRestart kills redis-server under two instances: local chat goes
// on, cross-instance messages fail fast with 410, each instance says once
// that Redis is down, and once it is back (presence rewritten into the
// empty new Redis) cross-instance chat resumes by itself.
func TestRedisRestart(t *testing.T) {
	r := startRedis(t)
	a, b := startInstance(t, r), startInstance(t, r)
	cs := loggedIn(t, a.addr, `"alice"`, `"carol"`)
	alice, carol := cs[0], cs[1]
	bob := loggedIn(t, b.addr, `"bob"`)[0]

	r.kill()
	a.WaitFor(t, "unreachable", wait)
	b.WaitFor(t, "unreachable", wait)

	start := time.Now()
	alice.send(1, wire.CmdSingle, `{"chat_from":"alice","chat_to":"bob","chat_content":"x"}`)
	if m := alice.expectError(1, wire.CodeUndelivered); fmt.Sprint(m["undelivered"]) != "[bob]" {
		t.Fatalf("410 lists %v", m["undelivered"])
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("410 took %v with Redis down; want fast failure", d)
	}
	alice.send(1, wire.CmdSingle, `{"chat_from":"alice","chat_to":"carol","chat_content":"local"}`)
	if m := carol.expect(1, wire.CmdSingle+100); m["chat_content"] != "local" {
		t.Fatalf("carol got %v", m)
	}
	alice.send(1, wire.CmdBroadcast, `{"chat_from":"alice","chat_content":"local all"}`)
	carol.expect(1, wire.CmdBroadcast+100)

	r.start()
	a.WaitFor(t, "reachable again", 3*wait)
	b.WaitFor(t, "reachable again", 3*wait)
	rc := r.client()
	defer rc.Close()
	if n, err := rc.Exists(context.Background(), redisPrefix+"user:bob").Result(); err != nil || n != 1 {
		t.Fatalf("bob's presence not rewritten in the restarted Redis: %d %v", n, err)
	}
	alice.send(1, wire.CmdSingle, `{"chat_from":"alice","chat_to":"bob","chat_content":"back"}`)
	if m := bob.expect(1, wire.CmdSingle+100); m["chat_content"] != "back" {
		t.Fatalf("bob got %v", m)
	}
	bob.send(1, wire.CmdBroadcast, `{"chat_from":"bob","chat_content":"hello all"}`)
	alice.expect(1, wire.CmdBroadcast+100)
	carol.expect(1, wire.CmdBroadcast+100)
	for _, p := range []*instance{a, b} {
		out := p.Stdout.String() + p.Stderr.String()
		if n := strings.Count(out, "unreachable"); n != 1 {
			t.Errorf("%d \"unreachable\" lines, want 1:\n%s", n, out)
		}
	}
}

// TestRedisUnreachableAtStart: no Redis at start is a one-line start-up
// failure, exit 1; a malformed URL is a usage error, exit 2.
func TestRedisUnreachableAtStart(t *testing.T) {
	port := testutil.FreePort(t)
	code, _, stderr := testutil.Run(t, "", 3*wait, "-n", "chat", "--port", "0", "--iface", "127.0.0.1", "--redis", fmt.Sprintf("redis://127.0.0.1:%d/0", port))
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != 1 || len(lines) != 1 || !strings.Contains(lines[0], "--redis 127.0.0.1:"+strconv.Itoa(port)) || !strings.Contains(lines[0], "connection refused") {
		t.Fatalf("exit %d, stderr:\n%s\nwant exit 1 and one line naming --redis", code, stderr)
	}
	code, _, stderr = testutil.Run(t, "", wait, "-n", "chat", "--redis", "http://127.0.0.1:1")
	if code != 2 || !strings.Contains(stderr, "invalid value for --redis") {
		t.Fatalf("exit %d, stderr:\n%s\nwant exit 2 naming --redis", code, stderr)
	}
}

// TestRedisInProcess runs two hubs on Redis in this process, so that the
// race detector sees the cluster's goroutines: delivery, broadcast, a
// replaced login, and a renewal that finds a session taken over while
// its notice was lost.
func TestRedisInProcess(t *testing.T) {
	r := startRedis(t)
	cfg := DefaultConfig()
	cfg.Redis, cfg.PresenceTTL = r.url(), testTTL
	_, addrA, _ := startServer(t, cfg)
	_, addrB, logsB := startServer(t, cfg)
	alice := loggedIn(t, addrA, `"alice"`)[0]
	bob := loggedIn(t, addrB, `"bob"`)[0]
	alice.send(1, wire.CmdSingle, `{"chat_from":"alice","chat_to":"bob","chat_content":"hi"}`)
	bob.expect(1, wire.CmdSingle+100)
	bob.send(1, wire.CmdBroadcast, `{"chat_from":"bob","chat_content":"all"}`)
	alice.expect(1, wire.CmdBroadcast+100)
	loggedIn(t, addrA, `"bob"`)
	bob.expectError(1, wire.CodeReplaced)
	bob.expectClosed()

	// A takeover whose notice never arrived (written straight into Redis):
	// the next renewal closes the session.
	carol := loggedIn(t, addrB, `"carol"`)[0]
	rc := r.client()
	defer rc.Close()
	if err := rc.Set(context.Background(), redisPrefix+"user:carol", "elsewhere:1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	carol.expectError(1, wire.CodeReplaced)
	carol.expectClosed()
	logsB.waitLog(t, "ID logged in on another instance")
}

// TestRedisApplicationFile: redis is one of chat's options in an
// application file too.
func TestRedisApplicationFile(t *testing.T) {
	r := startRedis(t)
	dir := t.TempDir()
	app := fmt.Sprintf("[[service]]\nplugin = \"chat\"\n[service.options]\nport = \"tcp:0:interface=127.0.0.1\"\nredis = %q\n", r.url())
	if err := os.WriteFile(filepath.Join(dir, "app.toml"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	p := testutil.Start(t, dir, "-n", "--logfile", "-", "-y", "app.toml")
	p.WaitFor(t, fmt.Sprintf("joined the instances on redis 127.0.0.1:%d", r.port), wait)
	b := startInstance(t, r)
	alice := loggedIn(t, p.ListenAddr(t), `"alice"`)[0]
	bob := loggedIn(t, b.addr, `"bob"`)[0]
	bob.send(1, wire.CmdSingle, `{"chat_from":"bob","chat_to":"alice","chat_content":"from the command line"}`)
	alice.expect(1, wire.CmdSingle+100)
}

// TestRedisSubscriptionGap kills only the instances' subscriptions (as
// Redis does to a subscriber past its output buffer limit): each instance
// logs the gap, resubscribes, and messages flow again.
func TestRedisSubscriptionGap(t *testing.T) {
	r := startRedis(t)
	a, b := startInstance(t, r), startInstance(t, r)
	alice := loggedIn(t, a.addr, `"alice"`)[0]
	bob := loggedIn(t, b.addr, `"bob"`)[0]
	rc := r.client()
	defer rc.Close()
	if n, err := rc.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Result(); err != nil || n != 2 {
		t.Fatalf("CLIENT KILL TYPE pubsub: %d %v, want 2 killed", n, err)
	}
	a.WaitFor(t, "redis subscription renewed after a gap", wait)
	b.WaitFor(t, "redis subscription renewed after a gap", wait)
	// Both: alice's instance reports bob undelivered (410) until it is.
	a.WaitFor(t, "reachable again", wait)
	b.WaitFor(t, "reachable again", wait)
	alice.send(1, wire.CmdSingle, `{"chat_from":"alice","chat_to":"bob","chat_content":"after the gap"}`)
	if m := bob.expect(1, wire.CmdSingle+100); m["chat_content"] != "after the gap" {
		t.Fatalf("bob got %v", m)
	}
}

// TestRedisSentinel finds the master through a Sentinel (redis-server
// --sentinel): --redis redis://SENTINEL/0?master_name=NAME.
func TestRedisSentinel(t *testing.T) {
	r := startRedis(t)
	dir := t.TempDir()
	port := testutil.FreePort(t)
	conf := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "port %d\nbind 127.0.0.1\nsentinel monitor twistd 127.0.0.1 %d 1\n", port, r.port), 0o644); err != nil {
		t.Fatal(err)
	}
	s := exec.Command("redis-server", conf, "--sentinel")
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Process.Kill(); s.Wait() })
	sc := redis.NewSentinelClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), MaxRetries: -1})
	defer sc.Close()
	waitFor(t, "the sentinel to name the master", func() bool {
		return sc.GetMasterAddrByName(context.Background(), "twistd").Err() == nil
	})
	url := fmt.Sprintf("redis://127.0.0.1:%d/0?master_name=twistd", port)
	var insts []*instance
	for range 2 {
		p := testutil.Start(t, "", "-n", "--logfile", "-", "chat", "--port", "0", "--iface", "127.0.0.1", "--redis", url)
		p.WaitFor(t, fmt.Sprintf("joined the instances on redis sentinel 127.0.0.1:%d master twistd", port), wait)
		insts = append(insts, &instance{Proc: p, addr: p.ListenAddr(t)})
	}
	alice := loggedIn(t, insts[0].addr, `"alice"`)[0]
	bob := loggedIn(t, insts[1].addr, `"bob"`)[0]
	alice.send(1, wire.CmdSingle, `{"chat_from":"alice","chat_to":"bob","chat_content":"via the sentinel"}`)
	if m := bob.expect(1, wire.CmdSingle+100); m["chat_content"] != "via the sentinel" {
		t.Fatalf("bob got %v", m)
	}
}

// With --metrics, an instance on Redis says whether Redis answers and
// counts its publishes and the messages other instances sent it.
func TestRedisMetrics(t *testing.T) {
	r := startRedis(t)
	var urls []string
	var addrs []string
	for range 2 {
		mport := testutil.FreePort(t)
		p := testutil.Start(t, "", "-n", "--logfile", "-", "--metrics", fmt.Sprintf("tcp:%d:interface=127.0.0.1", mport),
			"chat", "--port", "0", "--iface", "127.0.0.1", "--redis", r.url(), "--presence-ttl", testTTL.String())
		p.WaitFor(t, "joined the instances on redis", wait)
		urls = append(urls, fmt.Sprintf("http://127.0.0.1:%d/metrics", mport))
		addrs = append(addrs, p.ListenAddr(t))
	}
	alice := loggedIn(t, addrs[0], `"alice"`)[0]
	bob := loggedIn(t, addrs[1], `"bob"`)[0]
	for range 3 {
		alice.send(1, wire.CmdSingle, `{"chat_from":"alice","chat_to":"bob","chat_content":"hi"}`)
		bob.expect(1, wire.CmdSingle+100)
	}
	value := func(url, name string) float64 {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) == 2 && strings.HasPrefix(f[0], name) {
				v, _ := strconv.ParseFloat(f[1], 64)
				return v
			}
		}
		t.Fatalf("%s: no %s in\n%s", url, name, b)
		return 0
	}
	if v := value(urls[0], "twistd_chat_redis_up{"); v != 1 {
		t.Errorf("redis_up %v, want 1", v)
	}
	if v := value(urls[0], "twistd_chat_redis_publishes_total{"); v < 1 {
		t.Errorf("publishes of the sending instance: %v", v)
	}
	if v := value(urls[1], "twistd_chat_remote_messages_total{"); v < 3 {
		t.Errorf("remote messages on the receiving instance: %v, want at least 3", v)
	}
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"twistd_chat_redis_up", "twistd_chat_redis_publishes_total", "twistd_chat_remote_messages_total"} {
		if !strings.Contains(string(readme), "| `"+name+"` |") {
			t.Errorf("%s is not in the README's table of metrics", name)
		}
	}
	r.kill()
	deadline := time.Now().Add(wait)
	for value(urls[0], "twistd_chat_redis_up{") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("redis_up stays 1 with Redis gone")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
