package ftplite

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/twistd-go/twistd/internal/reactor"
)

// TestExampleConfig: configs/ftp-lite.toml listens on loopback only and
// ships no secret: no password in its comments, no account in ftp-passwd.
// (internal/app's TestExampleFTP runs it, adding an account first.)
func TestExampleConfig(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "configs")
	b, err := os.ReadFile(filepath.Join(dir, "ftp-lite.toml"))
	must(t, err)
	var app struct {
		Service []struct {
			Plugin  string
			Options map[string]any
		}
	}
	must(t, toml.Unmarshal(b, &app))
	found := false
	for _, s := range app.Service {
		if s.Plugin != "ftp-lite" {
			continue
		}
		found = true
		iface, _ := s.Options["iface"].(string)
		ep, err := reactor.PortFlag(fmt.Sprint(s.Options["port"]), iface)
		must(t, err)
		if ip := net.ParseIP(ep.Interface); ip == nil || !ip.IsLoopback() {
			t.Errorf("the example listens on %q, not on a loopback address", ep.Interface)
		}
	}
	if !found {
		t.Fatal("no ftp-lite service in configs/ftp-lite.toml")
	}
	// user:password in a URL, or a quoted password.
	secret := regexp.MustCompile(`ftp://[^/@\s]+:[^/@\s]+@|(?i)password\W+"`)
	for n, line := range strings.Split(string(b), "\n") {
		if secret.MatchString(line) {
			t.Errorf("ftp-lite.toml:%d gives a password away: %s", n+1, line)
		}
	}
	f, err := os.Open(filepath.Join(dir, "ftp-passwd"))
	must(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			t.Errorf("ftp-passwd:%d ships an account: %s", n, l)
		}
	}
}
