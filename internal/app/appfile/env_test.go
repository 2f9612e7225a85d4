package appfile

import (
	"reflect"
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	env := map[string]string{"HOST": "127.0.0.1", "EMPTY": "", "DOLLAR": "${HOST}"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	good := []struct {
		in, want string
		from     []string
	}{
		{"plain", "plain", nil},
		{"${HOST}", "127.0.0.1", []string{"$HOST"}},
		{"tcp:${PORT:-10000}:interface=${HOST}", "tcp:10000:interface=127.0.0.1", []string{"default of unset $PORT", "$HOST"}},
		{"${EMPTY}", "", []string{"$EMPTY"}},
		{"${EMPTY:-x}", "x", []string{"default of empty $EMPTY"}},
		{"${NOPE:-}", "", []string{"default of unset $NOPE"}},
		{"${NOPE:-a:b}", "a:b", []string{"default of unset $NOPE"}},
		{"$${HOST}", "${HOST}", nil},
		{"cost $5 $$ $", "cost $5 $ $", nil},
		{"${DOLLAR}", "${HOST}", []string{"$DOLLAR"}}, // substituted once, not again
	}
	for _, tc := range good {
		got, from, err := expand(tc.in, lookup)
		if err != nil || got != tc.want || !reflect.DeepEqual(from, tc.from) {
			t.Errorf("%q: %q %q %v; want %q %q", tc.in, got, from, err, tc.want, tc.from)
		}
	}
	bad := []struct{ in, msg string }{
		{"${NOPE}", `"${NOPE}": environment variable NOPE is not set (${NOPE:-VALUE} gives a default)`},
		{"a${HOST", "${ without a closing }"},
		{"${}", "is not ${NAME}"},
		{"${1X}", "is not ${NAME}"},
		{"${HO ST}", "is not ${NAME}"},
		{"${HOST:default}", "is not ${NAME}"},
	}
	for _, tc := range bad {
		_, _, err := expand(tc.in, lookup)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.msg)
		}
	}
}

// In a file: strings of [runner] and [service.options] are expanded, lists
// element by element, numbers and the service's own keys are not; an unset
// variable is an error on its line.
func TestParseEnvironment(t *testing.T) {
	t.Setenv("TWISTD_TEST_POEM", "frost.txt")
	t.Setenv("TWISTD_TEST_GRACE", "2s")
	src := `[runner]
grace = "${TWISTD_TEST_GRACE}"
logfile = "${TWISTD_TEST_UNSET:-x.log}"

[[service]]
plugin = "fastpoetry"
name = "${TWISTD_TEST_POEM}"
[service.options]
port = 10001
poem = "${TWISTD_TEST_POEM}"
`
	app, err := Parse("app.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []Setting{
		{Key: "grace", Value: "2s", Line: 2, From: []string{"$TWISTD_TEST_GRACE"}},
		{Key: "logfile", Value: "x.log", Line: 3, From: []string{"default of unset $TWISTD_TEST_UNSET"}},
	}
	if !reflect.DeepEqual(app.Runner, want) {
		t.Errorf("runner %+v, want %+v", app.Runner, want)
	}
	want = []Setting{
		{Key: "port", Value: int64(10001), Line: 9},
		{Key: "poem", Value: "frost.txt", Line: 10, From: []string{"$TWISTD_TEST_POEM"}},
	}
	if s := app.Services[0]; s.Name != "${TWISTD_TEST_POEM}" || !reflect.DeepEqual(s.Options, want) {
		t.Errorf("service %q options %+v, want %+v", s.Name, s.Options, want)
	}

	_, err = Parse("app.toml", []byte(`[[service]]
plugin = "ftp-lite"
[service.options]
root = "."
password-file = "${TWISTD_TEST_UNSET}"
`))
	if err == nil || err.Error() != `app.toml:5: [service.options] password-file = "${TWISTD_TEST_UNSET}": environment variable TWISTD_TEST_UNSET is not set (${TWISTD_TEST_UNSET:-VALUE} gives a default)` {
		t.Errorf("unset variable: %v", err)
	}
}
