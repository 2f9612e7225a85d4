package app_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/testutil"
)

// configsDir is the repository's configs/ directory.
func configsDir(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "configs")
}

// exampleCopy copies configs/ into a temp dir and moves each fixed port
// of app (e.g. 10001) to a free one: tests never use fixed ports. It
// returns the directory and the old-to-new port map.
func exampleCopy(t *testing.T, app string) (string, map[int]int) {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(configsDir(t))); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, app)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ports := map[int]int{}
	re := regexp.MustCompile(`(?m)^(\s*port\s*=\s*)(\d+)`)
	b = re.ReplaceAllFunc(b, func(m []byte) []byte {
		sub := re.FindSubmatch(m)
		old, _ := strconv.Atoi(string(sub[2]))
		if _, ok := ports[old]; !ok {
			ports[old] = testutil.FreePort(t)
		}
		return append(sub[1], strconv.Itoa(ports[old])...)
	})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, ports
}

// stopClean sends SIGTERM and expects a clean exit with every service
// stopped.
func stopClean(t *testing.T, p *testutil.Proc) {
	t.Helper()
	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\nstdout:\n%s\nstderr:\n%s", code, p.Stdout, p.Stderr)
	}
	if !strings.Contains(p.Stdout.String(), "[-] shut down\n") {
		t.Fatalf("no clean shutdown line:\n%s", p.Stdout)
	}
}

func mustBeFree(t *testing.T, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("port %d is held: %v", port, err)
	}
	ln.Close()
}

func TestExampleTwoPoems(t *testing.T) {
	dir, ports := exampleCopy(t, "two-poems.toml")
	p := testutil.Start(t, dir, "-n", "-y", "two-poems.toml")
	p.WaitFor(t, "[-] started\n", 10*time.Second)
	for old, poem := range map[int]string{10001: "poem.txt", 10002: "hope.txt"} {
		want, err := os.ReadFile(filepath.Join(dir, poem))
		if err != nil {
			t.Fatal(err)
		}
		if got := fetch(t, addr(ports[old])); got != string(want) {
			t.Errorf("port %d (was %d) sent %q, want %s", ports[old], old, got, poem)
		}
	}
	out := p.Stdout.String()
	for _, want := range []string{"application poetry, pid", "[poems] started frost", "[poems] started dickinson", "[poetry] started poems"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	stopClean(t, p)
	// The group stops its services in reverse order.
	out = p.Stdout.String()
	if i, j := strings.Index(out, "[poems] stopped dickinson"), strings.Index(out, "[poems] stopped frost"); i < 0 || j < 0 || i > j {
		t.Errorf("want dickinson stopped before frost:\n%s", out)
	}
	for _, port := range ports {
		mustBeFree(t, port)
	}
}

func TestCheck(t *testing.T) {
	dir, ports := exampleCopy(t, "two-poems.toml")
	// The poem is resolved against the file's directory.
	want := "two-poems.toml: ok\npoetry\n  poems\n    frost\n      poem (" + filepath.Join(dir, "poem.txt") + ")\n      listener (tcp:" + strconv.Itoa(ports[10001]) + ":interface=127.0.0.1)\n"
	for _, args := range [][]string{{"check", "two-poems.toml"}, {"-y", "two-poems.toml", "--check"}, {"-y", "two-poems.toml", "check"}} {
		code, stdout, stderr := testutil.Run(t, dir, 10*time.Second, args...)
		if code != 0 || !strings.HasPrefix(stdout, want) || stderr != "" {
			t.Errorf("twistd %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
		}
		if !strings.Contains(stdout, "runner option --grace=5s (two-poems.toml:14)\n") {
			t.Errorf("twistd %s: runner option not shown:\n%s", strings.Join(args, " "), stdout)
		}
	}
	code, stdout, _ := testutil.Run(t, dir, 10*time.Second, "--grace", "1s", "check", "two-poems.toml")
	if code != 0 || !strings.Contains(stdout, "runner option --grace=1s (command line)\n") {
		t.Errorf("command-line grace not shown as winning (exit %d):\n%s", code, stdout)
	}
	// check takes every runner option -y takes, after the file too, and
	// prints what -y FILE --check prints for the same options.
	_, viaY, _ := testutil.Run(t, dir, 10*time.Second, "-n", "-y", "two-poems.toml", "--grace", "1s", "--pidfile", "cli.pid", "--check")
	code, stdout, stderr := testutil.Run(t, dir, 10*time.Second, "check", "two-poems.toml", "--grace", "1s", "-n", "--pidfile", "cli.pid")
	if code != 0 || stdout != viaY || stderr != "" || !strings.Contains(stdout, "runner option --grace=1s (command line)\n") || !strings.Contains(stdout, "--pidfile=cli.pid (command line)\n") {
		t.Errorf("check FILE --grace 1s -n --pidfile cli.pid: exit %d\nstdout:\n%s\nwant what -y --check prints:\n%s\nstderr:\n%s", code, stdout, viaY, stderr)
	}
	code, _, stderr = testutil.Run(t, dir, 10*time.Second, "check", "two-poems.toml", "--grace", "soon")
	if code != 2 || stderr != `twistd: check: invalid value "soon" for --grace: time: invalid duration "soon" (see twistd check --help)`+"\n" {
		t.Errorf("check with a bad runner value: exit %d, stderr %q", code, stderr)
	}
	code, stdout, stderr = testutil.Run(t, dir, 10*time.Second, "--check", "fastpoetry", "--poem", "poem.txt", "--port", "tcp:0")
	if code != 0 || stdout != "fastpoetry: ok\nfastpoetry\n  fastpoetry\n    poem (poem.txt)\n    listener (tcp:0)\n" {
		t.Errorf("--check fastpoetry: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// TestValidationErrors puts one of every problem in one file: each is
// reported with its line, all at once, exit 2, and nothing is bound (the
// one good service's port stays free and nothing is logged).
func TestValidationErrors(t *testing.T) {
	dir := t.TempDir()
	good, clash := testutil.FreePort(t), testutil.FreePort(t)
	src := `name = "broken"

[runner]
grace = "soon"
colour = "blue"

[[service]]
plugin = "fastpoetry"
name = "good"
options = { port = ` + strconv.Itoa(good) + `, iface = "127.0.0.1", poem = "p.txt" }

[[service]]
plugin = "poetry"

[[service]]
plugin = "fastpoetry"
name = "typo"
[service.options]
peom = "p.txt"
port = "tcp:` + strconv.Itoa(clash) + `"

[[service]]
plugin = "fastpoetry"
name = "good"
options = { poem = "p.txt", port = ` + strconv.Itoa(good) + ` }

[[service]]
plugin = "fastpoetry"
name = "twin"
options = { poem = "p.txt", port = ` + strconv.Itoa(good) + `, iface = "127.0.0.1" }

[[service]]
plugin = "fastpoetry"
name = "flag"
options = { poem = "p.txt", port = "tcp:0", iface = true }
`
	// With the poem there, check finds nothing more than the start does.
	writeFiles(t, dir, map[string]string{"bad.toml": src, "p.txt": testPoem})
	code, stdout, stderr := testutil.Run(t, dir, 10*time.Second, "-n", "-y", "bad.toml")
	want := []string{
		`twistd: bad.toml:4: [runner]: invalid value "soon" for option grace: time: invalid duration "soon"`,
		`twistd: bad.toml:5: unknown runner option "colour" in [runner]`,
		`twistd: bad.toml:13: unknown plugin "poetry" (compiled in: `,
		`twistd: bad.toml:15: service "typo": missing required option poem of fastpoetry`,
		`twistd: bad.toml:19: service "typo": unknown option "peom" (did you mean "poem"?)`,
		`twistd: bad.toml:24: duplicate service name "good" (also at line 9)`,
		`twistd: bad.toml:27: service "twin" would listen on tcp:` + strconv.Itoa(good) + `:interface=127.0.0.1, as service "good" (line 7) does`,
		`twistd: bad.toml:35: service "flag": option iface: true/false given to an option that takes a value`,
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if code != 2 || len(lines) != len(want) {
		t.Fatalf("exit %d, %d lines, want 2 and %d:\n%s", code, len(lines), len(want), stderr)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("line %d:\n got %s\nwant %s...", i+1, lines[i], want[i])
		}
	}
	if stdout != "" {
		t.Errorf("something ran:\n%s", stdout)
	}
	mustBeFree(t, good)
	mustBeFree(t, clash)

	// check reports the same, also exit 2.
	code, _, stderr2 := testutil.Run(t, dir, 10*time.Second, "check", "bad.toml")
	if code != 2 || stderr2 != stderr {
		t.Errorf("check: exit %d\n%s", code, stderr2)
	}
}

func TestApplicationFileErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "syntax.toml"), []byte("name = \"x\"\n\n[[service]\nplugin = \"fastpoetry\"\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-n", "-y", "missing.toml"}, "twistd: application file missing.toml: no such file or directory (see twistd --help)\n"},
		{[]string{"-n", "-y", "syntax.toml"}, "twistd: syntax.toml:3: invalid TOML: expected ']]' to close array table name\n"},
		{[]string{"-n", "-y", "syntax.toml", "fastpoetry"}, "twistd: give an application file (-y) or a plugin, not both (see twistd --help)\n"},
		{[]string{"check"}, "twistd: check: no application file given (see twistd --help)\n"},
	} {
		code, stdout, stderr := testutil.Run(t, dir, 10*time.Second, c.args...)
		if code != 2 || stderr != c.want || stdout != "" {
			t.Errorf("twistd %s: exit %d\nstdout: %s\nstderr: %s\nwant:   %s", strings.Join(c.args, " "), code, stdout, stderr, c.want)
		}
	}
}

// TestCommandLineWinsOverFile runs the same file twice: its logfile is
// used when the command line gives none, and ignored when it does.
func TestCommandLineWinsOverFile(t *testing.T) {
	dir := t.TempDir()
	port := testutil.FreePort(t)
	os.WriteFile(filepath.Join(dir, "p.txt"), []byte("a poem\n"), 0o644)
	src := `[runner]
logfile = "file.log"
grace = "3s"

[[service]]
plugin = "fastpoetry"
options = { port = ` + strconv.Itoa(port) + `, iface = "127.0.0.1", poem = "p.txt" }
`
	os.WriteFile(filepath.Join(dir, "app.toml"), []byte(src), 0o644)

	run := func(logfile string, args ...string) {
		t.Helper()
		p := testutil.Start(t, dir, append(args, "-y", "app.toml")...)
		waitFile(t, filepath.Join(dir, logfile), "[-] started\n", 10*time.Second)
		if got := fetch(t, addr(port)); got != "a poem\n" {
			t.Errorf("got %q", got)
		}
		p.Signal(t, syscall.SIGTERM)
		if code := p.Wait(t, 10*time.Second); code != 0 {
			t.Fatalf("exit %d: %s", code, p.Stderr)
		}
		b, _ := os.ReadFile(filepath.Join(dir, logfile))
		if !strings.Contains(string(b), "[-] shut down\n") {
			t.Errorf("%s lacks the shutdown:\n%s", logfile, b)
		}
	}
	run("file.log", "-n")
	os.Remove(filepath.Join(dir, "file.log"))
	run("cli.log", "-n", "--logfile", "cli.log")
	if _, err := os.Stat(filepath.Join(dir, "file.log")); err == nil {
		t.Error("file.log written although --logfile was given")
	}
}

func TestProfiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.txt"), []byte("a poem\n"), 0o644)
	p := testutil.Start(t, dir, "-n", "--profile", "cpu.pprof", "--profile-mem", "mem.pprof", "fastpoetry", "--port", "tcp:0:interface=127.0.0.1", "--poem", "p.txt")
	_, portStr, _ := net.SplitHostPort(p.ListenAddr(t))
	p.WaitFor(t, "[-] started\n", 10*time.Second)
	port, _ := strconv.Atoi(portStr)
	for range 50 {
		fetch(t, addr(port))
	}
	stopClean(t, p)
	for _, want := range []string{"wrote the CPU profile cpu.pprof", "wrote the heap profile mem.pprof"} {
		if !strings.Contains(p.Stdout.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	checkProfiles(t, dir)

	// A profile that cannot be written fails the start, exit 1.
	code, _, stderr := testutil.Run(t, dir, 10*time.Second, "-n", "--profile", "/nonexistent/cpu.pprof", "fastpoetry", "--port", "tcp:0", "--poem", "p.txt")
	if code != 1 || !strings.Contains(stderr, "twistd: --profile: open /nonexistent/cpu.pprof: no such file or directory") {
		t.Errorf("exit %d: %s", code, stderr)
	}
}

// checkProfiles reads dir's cpu.pprof and mem.pprof with go tool pprof.
func checkProfiles(t *testing.T, dir string) {
	t.Helper()
	bin := testutil.Binary(t)
	for file, typ := range map[string]string{"cpu.pprof": "cpu", "mem.pprof": "alloc_space"} {
		out, err := exec.Command("go", "tool", "pprof", "-sample_index="+typ, "-top", bin, filepath.Join(dir, file)).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Type: "+typ) {
			t.Errorf("go tool pprof %s: %v\n%s", file, err, out)
		}
	}
}

// TestFilesThatAreNotWhatTheySeem gives a FIFO, a link to /dev/zero and an
// oversized file as the application file and as the poem: each is refused
// with one line, where reading would hang (a FIFO nobody writes) or fill
// the memory (/dev/zero). Every run is bounded, so a regression fails
// instead of hanging.
func TestFilesThatAreNotWhatTheySeem(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero")); err != nil {
		t.Fatal(err)
	}
	big := append([]byte("# "), make([]byte, 1<<20)...)
	if err := os.WriteFile(filepath.Join(dir, "big.toml"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	// One byte over the poem limit (64 MiB), sparse.
	writeFiles(t, dir, map[string]string{"huge.txt": ""})
	if err := os.Truncate(filepath.Join(dir, "huge.txt"), 64<<20+1); err != nil {
		t.Fatal(err)
	}
	huge := []string{"fastpoetry", "--port", "tcp:0:interface=127.0.0.1", "--poem", "huge.txt"}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"check", "fifo"}, 2, "twistd: application file fifo: not a regular file (a named pipe) (see twistd --help)\n"},
		{[]string{"-n", "-y", "fifo"}, 2, "twistd: application file fifo: not a regular file (a named pipe) (see twistd --help)\n"},
		{[]string{"-n", "-y", "zero"}, 2, "twistd: application file zero: not a regular file (a character device) (see twistd --help)\n"},
		{[]string{"check", "big.toml"}, 2, "twistd: application file big.toml: larger than the limit of 1 MiB (1048578 bytes) (see twistd --help)\n"},
		{[]string{"-n", "fastpoetry", "--port", "tcp:0:interface=127.0.0.1", "--poem", "fifo"}, 1, "twistd: poem fifo: not a regular file (a named pipe)\n"},
		{[]string{"-n", "fastpoetry", "--port", "tcp:0:interface=127.0.0.1", "--poem", "zero"}, 1, "twistd: poem zero: not a regular file (a character device)\n"},
		{append([]string{"-n"}, huge...), 1, "twistd: poem huge.txt: larger than the limit of 64 MiB (67108865 bytes)\n"},
		{append([]string{"--check"}, huge...), 1, "twistd: fastpoetry: --poem " + filepath.Join(dir, "huge.txt") + ": larger than the limit of 64 MiB (67108865 bytes)\n"},
		{[]string{"--check", "fastpoetry", "--port", "tcp:0:interface=127.0.0.1", "--poem", "zero"}, 1, "twistd: fastpoetry: --poem " + filepath.Join(dir, "zero") + ": not a regular file (a character device)\n"},
	} {
		code, _, stderr := testutil.Run(t, dir, 10*time.Second, c.args...)
		if code != c.code || stderr != c.want {
			t.Errorf("twistd %s: exit %d\nstderr: %s\nwant %d: %s", strings.Join(c.args, " "), code, stderr, c.code, c.want)
		}
	}
}

// TestApplicationFileFromAnyDirectory starts configs/two-poems.toml from
// three working directories: its poem and pidfile paths are relative to
// the file, so each start serves both poems and writes the one pidfile
// beside the file, and status and stop, given the file from yet another
// directory, find the daemon.
func TestApplicationFileFromAnyDirectory(t *testing.T) {
	dir, ports := exampleCopy(t, "two-poems.toml")
	parent, sibling := filepath.Dir(dir), t.TempDir()
	from := []struct{ cwd, file string }{
		{dir, "two-poems.toml"},
		{parent, filepath.Join(filepath.Base(dir), "two-poems.toml")},
		{sibling, filepath.Join("..", filepath.Base(dir), "two-poems.toml")},
	}
	pidfile := filepath.Join(dir, "poetry.pid")
	for i, start := range from {
		pid := startDaemon(t, start.cwd, pidfile, "-y", start.file)
		for old, poem := range map[int]string{10001: "poem.txt", 10002: "hope.txt"} {
			want, err := os.ReadFile(filepath.Join(dir, poem))
			if err != nil {
				t.Fatal(err)
			}
			if got := fetch(t, addr(ports[old])); got != string(want) {
				t.Errorf("started from %s: port %d sent %q, want %s", start.cwd, ports[old], got, poem)
			}
		}
		other := from[(i+1)%len(from)]
		if code, stdout, stderr := testutil.Run(t, other.cwd, 10*time.Second, "-y", other.file, "status"); code != 0 {
			t.Errorf("status from %s: exit %d\n%s%s", other.cwd, code, stdout, stderr)
		}
		other = from[(i+2)%len(from)]
		if code, stdout, stderr := testutil.Run(t, other.cwd, 20*time.Second, "-y", other.file, "stop"); code != 0 {
			t.Fatalf("stop from %s: exit %d\n%s%s", other.cwd, code, stdout, stderr)
		}
		waitGone(t, pid, 10*time.Second)
	}
}

// writeFiles writes name → content into dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCheckOpensEverything: check opens what the services will open and
// reports every missing or unusable file at once, each with its line,
// exit 1; a bad file as well is exit 2, with the file problems still
// listed; a plugin command line is checked the same way.
func TestCheckOpensEverything(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.txt"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"poem.txt": testPoem, "not-a-dir": "x"})
	src := `[runner]
pidfile = "no-such-dir/app.pid"

[[service]]
plugin = "fastpoetry"
name = "missing"
options = { port = "tcp:0:interface=127.0.0.1", poem = "missing.txt" }

[[service]]
plugin = "fastpoetry"
name = "fifo"
options = { port = "tcp:0:interface=127.0.0.1", poem = "fifo.txt" }

[[service]]
plugin = "ftp-lite"
[service.options]
port = "tcp:0:interface=127.0.0.1"
root = "not-a-dir"
password-file = "no-passwd"

[[service]]
plugin = "fastpoetry"
name = "good"
options = { port = "tcp:0:interface=127.0.0.1", poem = "poem.txt" }
`
	writeFiles(t, dir, map[string]string{"app.toml": src})
	sibling := t.TempDir()
	file := filepath.Join("..", filepath.Base(dir), "app.toml")
	code, stdout, stderr := testutil.Run(t, sibling, 10*time.Second, "check", file)
	want := "twistd: " + file + ":2: pidfile " + filepath.Join(dir, "no-such-dir/app.pid") + ": directory " + filepath.Join(dir, "no-such-dir") + ": no such file or directory\n" +
		"twistd: " + file + ":7: service \"missing\": poem " + filepath.Join(dir, "missing.txt") + ": no such file or directory\n" +
		"twistd: " + file + ":12: service \"fifo\": poem " + filepath.Join(dir, "fifo.txt") + ": not a regular file (a named pipe)\n" +
		"twistd: " + file + ":18: service \"ftp-lite\": root " + filepath.Join(dir, "not-a-dir") + ": not a directory\n" +
		"twistd: " + file + ":19: service \"ftp-lite\": password-file " + filepath.Join(dir, "no-passwd") + ": no such file or directory\n"
	if code != 1 || stderr != want || stdout != "" {
		t.Errorf("check: exit %d\nstdout: %s\nstderr:\n%s\nwant 1:\n%s", code, stdout, stderr, want)
	}

	// Two services on one port make the file bad: exit 2, and the missing
	// poem is still reported.
	port := strconv.Itoa(testutil.FreePort(t))
	writeFiles(t, dir, map[string]string{"clash.toml": `[[service]]
plugin = "fastpoetry"
name = "a"
options = { port = "tcp:` + port + `:interface=127.0.0.1", poem = "poem.txt" }

[[service]]
plugin = "fastpoetry"
name = "b"
options = { port = "tcp:` + port + `:interface=127.0.0.1", poem = "missing.txt" }
`})
	code, _, stderr = testutil.Run(t, dir, 10*time.Second, "check", "clash.toml")
	want = "twistd: clash.toml:6: service \"b\" would listen on tcp:" + port + ":interface=127.0.0.1, as service \"a\" (line 1) does\n" +
		"twistd: clash.toml:9: service \"b\": poem " + filepath.Join(dir, "missing.txt") + ": no such file or directory\n"
	if code != 2 || stderr != want {
		t.Errorf("check clash.toml: exit %d\nstderr:\n%s\nwant 2:\n%s", code, stderr, want)
	}

	// A plugin command line: paths relative to the working directory.
	code, _, stderr = testutil.Run(t, dir, 10*time.Second, "--check", "ftp-lite", "--port", "tcp:0:interface=127.0.0.1", "--root", "nowhere", "--tls-cert", "poem.txt", "--tls-key", "fifo.txt")
	want = "twistd: ftp-lite: --root " + filepath.Join(dir, "nowhere") + ": no such file or directory\n" +
		"twistd: ftp-lite: --tls-key " + filepath.Join(dir, "fifo.txt") + ": not a regular file (a named pipe)\n"
	if code != 1 || stderr != want {
		t.Errorf("--check ftp-lite: exit %d\nstderr:\n%s\nwant 1:\n%s", code, stderr, want)
	}
	// A bad option as well: exit 2, both reported.
	code, _, stderr = testutil.Run(t, dir, 10*time.Second, "--check", "ftp-lite", "--port", "tcp:nope", "--root", "nowhere")
	want = "twistd: ftp-lite: invalid value for --port: "
	if code != 2 || !strings.HasPrefix(stderr, want) || !strings.HasSuffix(stderr, "\ntwistd: ftp-lite: --root "+filepath.Join(dir, "nowhere")+": no such file or directory\n") {
		t.Errorf("--check ftp-lite with a bad port: exit %d\nstderr:\n%s", code, stderr)
	}
	code, stdout, stderr = testutil.Run(t, dir, 10*time.Second, "--check", "fastpoetry", "--port", "tcp:0:interface=127.0.0.1", "--poem", "poem.txt")
	if code != 0 || !strings.HasPrefix(stdout, "fastpoetry: ok\n") {
		t.Errorf("--check fastpoetry with a good poem: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestCheckAsTheTargetUser: what a service reads after the drop is opened
// as the --uid user. An ftp root only root may enter and a poem only root
// may read pass the check as root and fail it as nobody, while the
// password file, read before the drop, is not held against nobody.
func TestCheckAsTheTargetUser(t *testing.T) {
	requireRoot(t)
	dir := nobodyDir(t)
	private := filepath.Join(dir, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"passwd": ""})
	if err := os.WriteFile(filepath.Join(dir, "secret.txt"), []byte(testPoem), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, "passwd"), 0o600)
	writeFiles(t, dir, map[string]string{"app.toml": `[[service]]
plugin = "ftp-lite"
options = { port = "tcp:0:interface=127.0.0.1", root = "private", password-file = "passwd" }

[[service]]
plugin = "fastpoetry"
options = { port = "tcp:0:interface=127.0.0.1", poem = "secret.txt" }
`})
	if code, stdout, stderr := testutil.Run(t, dir, 10*time.Second, "check", "app.toml"); code != 0 {
		t.Fatalf("check as root: exit %d\n%s%s", code, stdout, stderr)
	}
	code, _, stderr := testutil.Run(t, dir, 10*time.Second, "--uid", "nobody", "--gid", "nogroup", "check", "app.toml")
	want := "twistd: app.toml:3: service \"ftp-lite\": root " + private + ": permission denied (as uid/gid 65534/65534)\n" +
		"twistd: app.toml:7: service \"fastpoetry\": poem " + filepath.Join(dir, "secret.txt") + ": permission denied (as uid/gid 65534/65534)\n"
	if code != 1 || stderr != want {
		t.Errorf("check as nobody: exit %d\nstderr:\n%s\nwant 1:\n%s", code, stderr, want)
	}
	// A directory nobody may list but not enter is refused too.
	os.Chmod(private, 0o704)
	code, _, stderr = testutil.Run(t, dir, 10*time.Second, "--uid", "nobody", "--gid", "nogroup", "check", "app.toml")
	if code != 1 || !strings.HasPrefix(stderr, "twistd: app.toml:3: service \"ftp-lite\": root "+private+": permission denied (as uid/gid 65534/65534)\n") {
		t.Errorf("check as nobody, root not searchable: exit %d\n%s", code, stderr)
	}
	// Readable through the group: the check runs with the target group ids.
	for _, f := range []string{private, filepath.Join(dir, "secret.txt")} {
		if err := os.Chown(f, 0, 65534); err != nil {
			t.Fatal(err)
		}
		os.Chmod(f, 0o750)
	}
	if code, stdout, stderr := testutil.Run(t, dir, 10*time.Second, "--uid", "nobody", "--gid", "nogroup", "check", "app.toml"); code != 0 {
		t.Errorf("check as nobody, readable by its group: exit %d\n%s%s", code, stdout, stderr)
	}
}

// TestApplicationFileChroot: with chroot = "jail" in the file, the poem
// written relative to the file as jail/poem.txt is read inside the jail
// after the chroot, and check finds it there.
func TestApplicationFileChroot(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	jail := filepath.Join(dir, "jail")
	if err := os.Mkdir(jail, 0o755); err != nil {
		t.Fatal(err)
	}
	writePoem(t, jail)
	port := testutil.FreePort(t)
	writeFiles(t, dir, map[string]string{"app.toml": `[runner]
chroot = "jail"
pidfile = "jail/app.pid"
logfile = "jail/app.log"

[[service]]
plugin = "fastpoetry"
options = { port = ` + strconv.Itoa(port) + `, iface = "127.0.0.1", poem = "jail/poem.txt" }
`})
	cwd := t.TempDir()
	file := filepath.Join(dir, "app.toml")
	if code, stdout, stderr := testutil.Run(t, cwd, 10*time.Second, "check", file); code != 0 || !strings.Contains(stdout, "poem (/poem.txt)") {
		t.Fatalf("check: exit %d\n%s%s", code, stdout, stderr)
	}
	pid := startDaemon(t, cwd, filepath.Join(jail, "app.pid"), "-y", file)
	if got := fetch(t, addr(port)); got != testPoem {
		t.Errorf("got %q", got)
	}
	stopDaemon(t, pid, filepath.Join(jail, "app.pid"))
	waitFile(t, filepath.Join(jail, "app.log"), "[poem] loaded poem /poem.txt", time.Second)
}

// ${VAR} in an application file takes the value from the environment,
// ${VAR:-default} falls back to the default, an unset variable without one
// is exit 2 with FILE:LINE naming it, and check says where values came from.
func TestApplicationFileEnvironment(t *testing.T) {
	dir := t.TempDir()
	writePoem(t, dir)
	os.WriteFile(filepath.Join(dir, "other.txt"), []byte("another poem\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "app.toml"), []byte(`[runner]
grace = "${TWISTD_TEST_GRACE:-1s}"
pidfile = ""

[[service]]
plugin = "fastpoetry"
[service.options]
port = "tcp:${TWISTD_TEST_PORT}:interface=127.0.0.1"
poem = "${TWISTD_TEST_POEM:-poem.txt}"
`), 0o644)
	twistd := func(env []string, args ...string) *testutil.Proc {
		cmd := exec.Command(testutil.Binary(t), args...)
		cmd.Env = append(os.Environ(), env...)
		return testutil.StartCmd(t, cmd, dir)
	}
	port := strconv.Itoa(testutil.FreePort(t))
	for _, tc := range []struct {
		env  []string
		poem string
	}{
		{[]string{"TWISTD_TEST_PORT=" + port}, testPoem},                                       // poem: the default
		{[]string{"TWISTD_TEST_PORT=" + port, "TWISTD_TEST_POEM=other.txt"}, "another poem\n"}, // poem: set
	} {
		p := twistd(tc.env, "-n", "-y", "app.toml")
		p.WaitFor(t, "[-] started\n", 10*time.Second)
		if got := fetch(t, "127.0.0.1:"+port); got != tc.poem {
			t.Errorf("%q: served %q, want %q", tc.env, got, tc.poem)
		}
		stopClean(t, p)
	}

	p := twistd([]string{"TWISTD_TEST_PORT=" + port, "TWISTD_TEST_GRACE=2s"}, "check", "app.toml")
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("check: exit %d\n%s%s", code, p.Stdout, p.Stderr)
	}
	for _, want := range []string{
		"listener (tcp:" + port + ":interface=127.0.0.1)\n",
		"runner option --grace=2s (app.toml:2, from $TWISTD_TEST_GRACE)\n",
		`service "fastpoetry" option --port from $TWISTD_TEST_PORT (app.toml:8)` + "\n",
		`service "fastpoetry" option --poem from default of unset $TWISTD_TEST_POEM (app.toml:9)` + "\n",
	} {
		if !strings.Contains(p.Stdout.String(), want) {
			t.Errorf("check does not say %q:\n%s", want, p.Stdout)
		}
	}

	want := "twistd: app.toml:8: [service.options] port = \"tcp:${TWISTD_TEST_PORT}:interface=127.0.0.1\": environment variable TWISTD_TEST_PORT is not set (${TWISTD_TEST_PORT:-VALUE} gives a default)\n"
	for _, args := range [][]string{{"-n", "-y", "app.toml"}, {"check", "app.toml"}} {
		p := twistd(nil, args...)
		if code := p.Wait(t, 10*time.Second); code != 2 || p.Stderr.String() != want || p.Stdout.String() != "" {
			t.Errorf("%q with TWISTD_TEST_PORT unset: exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit 2 and:\n%s", args, code, p.Stdout, p.Stderr, want)
		}
	}
}
