package twistd_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The public packages are a promise (README, "Compatibility"): their
// exported API, and that of every internal type they alias, is kept in
// testdata/api.txt. A change shows up here as a diff; if it is meant,
// regenerate the file with `make api` and say so in the change.
var public = []string{".", "./plugin", "./service", "./reactor", "./plugins/standard"}

var aliasRE = regexp.MustCompile(`(?m)^(?:type )?\t?(\w+) += (\w+)\.(\w+)$`)

var importRE = regexp.MustCompile(`"github.com/twistd-go/twistd/(internal/[\w/]+)"`)

func apiText(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	godoc := func(args ...string) {
		out, err := exec.Command("go", append([]string{"doc", "-all"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("go doc %v: %v\n%s", args, err, out)
		}
		fmt.Fprintf(&b, "==== go doc -all %s\n%s\n", strings.Join(args, " "), out)
	}
	for _, pkg := range public {
		godoc(pkg)
		files, _ := filepath.Glob(filepath.Join(pkg, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			imp := importRE.FindSubmatch(src)
			for _, m := range aliasRE.FindAllSubmatch(src, -1) {
				if imp == nil {
					t.Fatalf("%s aliases %s.%s but imports no internal package", f, m[2], m[3])
				}
				godoc("./"+string(imp[1]), string(m[3]))
			}
		}
	}
	return b.Bytes()
}

func TestPublicAPIUnchanged(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("skipped: no go command on PATH")
	}
	got := apiText(t)
	const file = "testdata/api.txt"
	if os.Getenv("UPDATE_API") == "1" {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (make api writes it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("the public API changed (run make api if that is meant); first difference at line %d of %s:\nwas: %s\nnow: %s", i+1, file, w, g)
			}
		}
	}
}
