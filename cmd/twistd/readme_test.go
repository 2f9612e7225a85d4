package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// CI must do what the README tells a new user to do: run the same test
// command, which installs the test dependencies from the one list in
// tools/deps.sh, so the README has no install step of its own to drift.
func TestCIFollowsREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	testCmd := regexp.MustCompile("(?m)^make (\\S+) +# .*test").FindSubmatch(readme)
	if testCmd == nil {
		t.Fatal("README: no `make TARGET  # ... test` line among the two commands")
	}
	target := string(testCmd[1])
	runsTest := regexp.MustCompile(`(?m)^make ` + regexp.QuoteMeta(target) + `$`).FindIndex(ci)
	if runsTest == nil {
		t.Fatalf(".ci/run does not run `make %s`, the README's test command", target)
	}
	if deps := regexp.MustCompile(`(?m)^tools/deps\.sh$`).FindIndex(ci); deps == nil || deps[0] > runsTest[0] {
		t.Errorf(".ci/run does not run tools/deps.sh before `make %s`", target)
	}
	if regexp.MustCompile(`apt-get install`).Match(readme) {
		t.Error("README has an apt-get install step: `make test` installs through tools/deps.sh")
	}
	if !strings.Contains(string(readme), "tools/deps.sh") {
		t.Error("README does not say that tools/deps.sh installs the test dependencies")
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mk := exec.CommandContext(ctx, "make", "-n", "--no-print-directory", target)
	mk.Dir = "../.."
	dry, err := mk.Output()
	if err != nil {
		t.Skipf("make -n %s: %v (Debian package make)", target, err)
	}
	first, _, _ := strings.Cut(string(dry), "\n")
	if !strings.HasPrefix(first, "tools/deps.sh") {
		t.Errorf("make %s does not run tools/deps.sh first; it starts with %q", target, first)
	}
}

// Without root or apt-get (here: a PATH that holds nothing) tools/deps.sh
// installs nothing, names every package of its list in the command to run,
// and exits 0 so that `make test` goes on.
func TestDepsNamesWhatIsMissing(t *testing.T) {
	script, err := os.ReadFile("../../tools/deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	// Commands are missing from an empty PATH unless they sit in the sbin
	// directories the script also looks in; files named by absolute path
	// (bash-completion's script) are there or not whatever PATH says.
	var missing []string
	wants := regexp.MustCompile(`(?m)^want (\S+) (\S+)$`).FindAllSubmatch(script, -1)
	for _, m := range wants {
		what, pkg := string(m[1]), string(m[2])
		if filepath.IsAbs(what) {
			if _, err := os.Stat(what); err == nil {
				continue
			}
		} else if executable("/usr/sbin/"+what) || executable("/sbin/"+what) {
			continue
		}
		missing = append(missing, pkg)
	}
	if len(wants) < 10 || len(missing) == 0 {
		t.Fatalf("tools/deps.sh wants %d packages, %d of them missing from an empty PATH", len(wants), len(missing))
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("skipped: no bash")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bash, "../../tools/deps.sh")
	cmd.Env = []string{"PATH=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tools/deps.sh without apt-get: %v\n%s", err, out)
	}
	_, hint, ok := strings.Cut(string(out), "apt-get install -y ")
	hint, _, _ = strings.Cut(hint, "\n")
	if !ok {
		t.Fatalf("tools/deps.sh without apt-get does not say what to install:\n%s", out)
	}
	if named := strings.Fields(hint); !slices.Equal(named, missing) {
		t.Errorf("tools/deps.sh names %v as missing, want %v:\n%s", named, missing, out)
	}
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
