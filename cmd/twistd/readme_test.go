package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// CI must do what the README tells a new user to do: run the same test
// command, after installing the same Debian packages.
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
	if !regexp.MustCompile(`(?m)^make ` + regexp.QuoteMeta(string(testCmd[1])) + `$`).Match(ci) {
		t.Errorf(".ci/run does not run `make %s`, the README's test command", testCmd[1])
	}

	install := regexp.MustCompile(`apt-get install -y ((?:[a-z0-9.+-]+ *(?:\\\n *)?)+)`).FindSubmatch(readme)
	if install == nil {
		t.Fatal("README: no apt-get install line")
	}
	documented := strings.Fields(strings.ReplaceAll(string(install[1]), `\`, " "))
	var installed []string
	for _, m := range regexp.MustCompile(`need\+=\(([a-z0-9.+-]+)\)`).FindAllSubmatch(ci, -1) {
		installed = append(installed, string(m[1]))
	}
	slices.Sort(documented)
	slices.Sort(installed)
	if !slices.Equal(documented, installed) {
		t.Errorf("README installs %v, .ci/run installs %v", documented, installed)
	}
}
