package chat

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	chatclient "github.com/twistd-go/twistd/internal/plugins/chat/client"
	"github.com/twistd-go/twistd/internal/plugins/chat/wire"
	"github.com/twistd-go/twistd/internal/testutil"
)

// usersFile writes a --users file of the given IDs and passwords.
func usersFile(t *testing.T, accounts ...string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < len(accounts); i += 2 {
		h, err := bcrypt.GenerateFromPassword([]byte(accounts[i+1]), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(accounts[i] + ":" + string(h) + "\n")
	}
	name := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(name, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestCredentials(t *testing.T) {
	cfg := DefaultConfig()
	cfg.UsersFile = usersFile(t, "alice", "secret", "13800138000", "s3same")
	_, addr, logs := startServer(t, cfg)
	alice := dial(t, addr)
	alice.send(1, wire.CmdVerify, `{"phone_number":"alice","password":"secret"}`)
	alice.expect(1, wire.CmdVerifyResult)
	phone := dial(t, addr)
	phone.send(2, wire.CmdVerify, `{"phone_number":13800138000,"password":"s3same"}`)
	phone.expect(2, wire.CmdVerifyResult)

	// No password, a wrong one, an unknown ID, a wrong type: refused, and
	// alice keeps her session.
	mallory := dial(t, addr)
	for _, body := range []string{
		`{"phone_number":"alice"}`,
		`{"phone_number":"alice","password":"Secret"}`,
		`{"phone_number":"alice","password":""}`,
		`{"phone_number":"eve","password":"secret"}`,
	} {
		mallory.send(3, wire.CmdVerify, body)
		if m := mallory.expectError(3, wire.CodeNotVerified); m["error"] != "wrong ID or password" {
			t.Fatalf("%s: %v", body, m)
		}
	}
	mallory.send(3, wire.CmdVerify, `{"phone_number":"alice","password":7}`)
	mallory.expectError(3, wire.CodeBadBody)
	// Still not logged in: chat is refused, and nothing reached alice.
	mallory.send(3, wire.CmdSingle, `{"chat_from":"alice","chat_to":"alice","chat_content":"x"}`)
	mallory.expectError(3, wire.CodeNotVerified)
	alice.sync()
	phone.send(2, wire.CmdSingle, `{"chat_from":13800138000,"chat_to":"alice","chat_content":"still you?"}`)
	if m := alice.expect(1, wire.CmdSingleMsg); m["chat_content"] != "still you?" {
		t.Fatalf("alice got %v", m)
	}
	logs.waitLog(t, "phone_number=eve")

	// The right password from another connection takes the ID over, as
	// without --users.
	again := dial(t, addr)
	again.send(1, wire.CmdVerify, `{"phone_number":"alice","password":"secret"}`)
	again.expect(1, wire.CmdVerifyResult)
	alice.expectError(1, wire.CodeReplaced)
	alice.expectClosed()
}

// TestNoCredentialsCompatible: without --users a password is ignored and
// a verify without one works, as with the classic server.
func TestNoCredentialsCompatible(t *testing.T) {
	_, addr, _ := startServer(t, DefaultConfig())
	c := dial(t, addr)
	c.send(1, wire.CmdVerify, `{"phone_number":"alice","password":"anything"}`)
	c.expect(1, wire.CmdVerifyResult)
	loggedIn(t, addr, `"bob"`)
}

func TestCredentialsGoClient(t *testing.T) {
	cfg := DefaultConfig()
	cfg.UsersFile = usersFile(t, "alice", "secret", "bob", "hunter2")
	_, addr, _ := startServer(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	start := func(id, password string) *chatclient.Client {
		c, err := chatclient.New(id, chatclient.Config{Network: "tcp", Address: addr, ID: id, Password: password, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Stop(context.Background()) })
		return c
	}
	alice, bob := start(`"alice"`, "secret"), start(`"bob"`, "hunter2")
	for _, c := range []*chatclient.Client{alice, bob} {
		if err := c.LoggedIn(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wrong := start(`"alice"`, "guess")
	var re *chatclient.RefusedError
	if err := wrong.LoggedIn(ctx); !errors.As(err, &re) || re.Code != wire.CodeNotVerified {
		t.Fatalf("wrong password: %v; want a 401 refusal", err)
	}
	if err := bob.Single(ctx, `"alice"`, "hi"); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-alice.Messages():
		if m.Command != wire.CmdSingleMsg {
			t.Fatalf("alice got %d %s", m.Command, m.Body)
		}
	case <-ctx.Done():
		t.Fatal("alice lost her session to a wrong password")
	}
}

func TestCredentialsPythonClient(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed (Debian package python3)")
	}
	cfg := DefaultConfig()
	cfg.UsersFile = usersFile(t, "alice", "secret", "bob", "hunter2")
	_, addr, _ := startServer(t, cfg)
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "testdata/chatclient.py", host, port, "--users").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("chatclient.py --users: %v\n%s", err, out)
	}
}

// TestUsersFileErrors: a --users file that cannot be used stops the start
// with one line, and the help says what IDs are without one.
func TestUsersFileErrors(t *testing.T) {
	plain := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(plain, []byte("alice:secret\n"), 0o600)
	for file, want := range map[string]string{
		plain:                `--users ` + plain + ` line 1: the password of "alice" is not a bcrypt hash`,
		"/nonexistent/users": "--users /nonexistent/users: no such file or directory",
	} {
		code, _, stderr := testutil.Run(t, "", 10*time.Second, "-n", "--logfile", "-", "chat", "--port", "0", "--iface", "127.0.0.1", "--users", file)
		if code != 1 || !strings.Contains(stderr, want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("--users %s: exit %d, stderr %q; want 1 and %q", file, code, stderr, want)
		}
	}
	_, stdout, _ := testutil.Run(t, "", 10*time.Second, "chat", "--help")
	if !strings.Contains(stdout, "IDs are unauthenticated unless --users is given") {
		t.Errorf("chat --help does not say IDs are unauthenticated:\n%s", stdout)
	}
}
