package app_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twistd-go/twistd/internal/testutil"
)

// The shipped units pass systemd-analyze verify with no complaint. The
// ExecStart path points at the test binary (verify checks that it exists)
// and --man=no skips the Documentation= check (the page is not installed).
func TestSystemdUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("skipped: systemd-analyze not installed (Debian package systemd)")
	}
	units, _ := filepath.Glob("../../configs/systemd/*")
	if len(units) < 3 {
		t.Fatalf("found %d unit files, want the notify service and the socket pair", len(units))
	}
	dir := t.TempDir()
	var paths []string
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "/usr/local/bin/twistd", testutil.Binary(t))
		p := filepath.Join(dir, filepath.Base(u))
		os.WriteFile(p, []byte(s), 0o644)
		paths = append(paths, p)
	}
	out, err := exec.Command(analyze, append([]string{"verify", "--man=no"}, paths...)...).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// The socket-activated service asks for its socket by the name its .socket
// unit gives it, so adding a Listen line to the unit cannot shift it.
func TestSystemdUnitsSocketName(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("../../configs/systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	socket, svc := read("twistd-fastpoetry-activated.socket"), read("twistd-fastpoetry-activated.service")
	var name string
	for _, l := range strings.Split(socket, "\n") {
		if v, ok := strings.CutPrefix(l, "FileDescriptorName="); ok {
			name = v
		}
	}
	if name == "" || !strings.Contains(svc, "--port systemd:name="+name+" ") {
		t.Fatalf("the socket is named %q; the service's ExecStart must serve --port systemd:name=%s", name, name)
	}
}
