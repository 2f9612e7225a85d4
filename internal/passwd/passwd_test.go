package passwd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func write(t *testing.T, content string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func hash(t *testing.T, pass string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pass), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestRead(t *testing.T) {
	a, b := hash(t, "secret", bcrypt.MinCost), hash(t, "other", bcrypt.MinCost+1)
	users, err := Read("--users", write(t, "# accounts\n\nalice:"+a+"\n  13800138000:"+b+"  \n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 || string(users["alice"]) != a || string(users["13800138000"]) != b {
		t.Fatalf("read %v", users)
	}
	if bcrypt.CompareHashAndPassword(users["alice"], []byte("secret")) != nil {
		t.Fatal("alice's hash does not match her password")
	}
	if c := users.MaxCost(); c != bcrypt.MinCost+1 {
		t.Fatalf("MaxCost %d", c)
	}
	if c := (Users{}).MaxCost(); c != bcrypt.MinCost {
		t.Fatalf("MaxCost of none %d", c)
	}
}

func TestReadErrors(t *testing.T) {
	h := hash(t, "x", bcrypt.MinCost)
	missing := filepath.Join(t.TempDir(), "none")
	for _, tc := range []struct{ name, want string }{
		{missing, "--users " + missing + ": no such file or directory"},
		{write(t, "alice\n"), "line 1: want user:bcrypt-hash"},
		{write(t, ":"+h+"\n"), "line 1: want user:bcrypt-hash"},
		{write(t, "a:"+h+"\n#\na:"+h+"\n"), `line 3: user "a" given twice`},
		{write(t, "bob:hunter2\n"), `the password of "bob" is not a bcrypt hash (plain-text passwords are refused`},
	} {
		_, err := Read("--users", tc.name)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v; want %q", tc.name, err, tc.want)
		}
	}
}
