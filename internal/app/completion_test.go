package app_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twistd-go/twistd/internal/testutil"
)

func TestCompletionScripts(t *testing.T) {
	for shell, marker := range map[string]string{
		"bash": "__start_twistd",
		"zsh":  "#compdef twistd",
		"fish": "complete -c twistd",
	} {
		code, out, stderr := testutil.Run(t, "", 10*time.Second, "completion", shell)
		if code != 0 || !strings.Contains(out, marker) || stderr != "" {
			t.Errorf("completion %s: exit %d, stderr %q, script without %q", shell, code, stderr, marker)
			continue
		}
		// Where the shell is installed, the script must at least parse.
		if sh, err := exec.LookPath(shell); err == nil {
			f := t.TempDir() + "/c." + shell
			os.WriteFile(f, []byte(out), 0o644)
			if b, err := exec.Command(sh, "-n", f).CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v\n%s", shell, err, b)
			}
		}
	}
}

// Real bash completion: the script, driven the way bash drives it,
// offers plugin names and then the plugin's own flags.
func TestBashCompletion(t *testing.T) {
	const lib = "/usr/share/bash-completion/bash_completion"
	if _, err := os.Stat(lib); err != nil {
		t.Skip("skipped: bash-completion (Debian package bash-completion) not installed")
	}
	bin := testutil.Binary(t)
	// Only the .toml file is offered; the poem beside it is not.
	apps := t.TempDir()
	os.WriteFile(filepath.Join(apps, "two-poems.toml"), nil, 0o644)
	os.WriteFile(filepath.Join(apps, "three.txt"), nil, 0o644)
	for line, want := range map[string]string{
		bin + " fast":              "fastpoetry",
		bin + " fastpoetry --po":   "--port --poem",
		bin + " --logfile-max-f":   "--logfile-max-files",
		bin + " --uid nob":         "nobody",
		bin + " -g nogr":           "nogroup",
		bin + " -y " + apps + "/t": apps + "/two-poems.toml",
	} {
		script := `source ` + lib + `; source <("$BIN" completion bash)
read -a COMP_WORDS <<< "$LINE"; COMP_CWORD=$((${#COMP_WORDS[@]}-1)); COMP_LINE="$LINE"; COMP_POINT=${#LINE}
__start_twistd; echo "${COMPREPLY[@]}"`
		cmd := exec.Command("bash", "-c", script)
		cmd.Env = append(os.Environ(), "BIN="+bin, "LINE="+line)
		out, err := cmd.Output()
		if got := strings.TrimSpace(string(out)); err != nil || got != want {
			t.Errorf("completing %q: %q, %v; want %q", line, got, err, want)
		}
	}
}
