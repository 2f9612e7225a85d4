package reactor

import (
	"strings"
	"testing"
)

func TestParseEndpoint(t *testing.T) {
	good := []struct {
		in   string
		want Endpoint
		spec string
		str  string // for people: no escapes
	}{
		{"10000", Endpoint{Kind: "tcp", Port: 10000}, "tcp:10000", "tcp:10000"},
		{"tcp:0", Endpoint{Kind: "tcp", Port: 0}, "tcp:0", "tcp:0"},
		{"tcp:10000:interface=127.0.0.1", Endpoint{Kind: "tcp", Port: 10000, Interface: "127.0.0.1"}, "tcp:10000:interface=127.0.0.1", "tcp:10000:interface=127.0.0.1"},
		{"tcp:port=80:interface=127.0.0.2", Endpoint{Kind: "tcp", Port: 80, Interface: "127.0.0.2"}, "tcp:80:interface=127.0.0.2", "tcp:80:interface=127.0.0.2"},
		{`tcp:8080:interface=\:\:1`, Endpoint{Kind: "tcp", Port: 8080, Interface: "::1"}, `tcp:8080:interface=\:\:1`, "tcp:8080:interface=::1"},
		{"unix:/run/x.sock", Endpoint{Kind: "unix", Path: "/run/x.sock", Mode: 0o666}, "unix:/run/x.sock", "unix:/run/x.sock"},
		{"unix:address=/tmp/a.sock:mode=600", Endpoint{Kind: "unix", Path: "/tmp/a.sock", Mode: 0o600}, "unix:/tmp/a.sock:mode=600", "unix:/tmp/a.sock:mode=600"},
		{"systemd:domain=INET:index=0", Endpoint{Kind: "systemd", Domain: "INET", Index: 0}, "systemd:domain=INET:index=0", "systemd:domain=INET:index=0"},
		{"systemd:domain=UNIX:index=2", Endpoint{Kind: "systemd", Domain: "UNIX", Index: 2}, "systemd:domain=UNIX:index=2", "systemd:domain=UNIX:index=2"},
		{"tcp:10000:interface=::1", Endpoint{Kind: "tcp", Port: 10000, Interface: "::1"}, `tcp:10000:interface=\:\:1`, "tcp:10000:interface=::1"},
		{"tcp:80:interface=fe80::1:2", Endpoint{Kind: "tcp", Port: 80, Interface: "fe80::1:2"}, `tcp:80:interface=fe80\:\:1\:2`, "tcp:80:interface=fe80::1:2"},
		{"tcp:interface=2001:db8::1:port=443", Endpoint{Kind: "tcp", Port: 443, Interface: "2001:db8::1"}, `tcp:443:interface=2001\:db8\:\:1`, "tcp:443:interface=2001:db8::1"},
		{"tcp:interface=::1:10000", Endpoint{Kind: "tcp", Port: 10000, Interface: "::1"}, `tcp:10000:interface=\:\:1`, "tcp:10000:interface=::1"}, // 10000 is no IPv6 group
		{`tcp:interface=\:\:1:10000`, Endpoint{Kind: "tcp", Port: 10000, Interface: "::1"}, `tcp:10000:interface=\:\:1`, "tcp:10000:interface=::1"},
		{"systemd:name=poetry", Endpoint{Kind: "systemd", Name: "poetry"}, "systemd:name=poetry", "systemd:name=poetry"},
		{"systemd:name=web:domain=INET6", Endpoint{Kind: "systemd", Domain: "INET6", Name: "web"}, "systemd:domain=INET6:name=web", "systemd:domain=INET6:name=web"},
		{`unix:/tmp/a\:b.sock`, Endpoint{Kind: "unix", Path: "/tmp/a:b.sock", Mode: 0o666}, `unix:/tmp/a\:b.sock`, "unix:/tmp/a:b.sock"},
	}
	for _, tc := range good {
		got, err := ParseEndpoint(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%q: got %+v want %+v", tc.in, got, tc.want)
		}
		if got.Spec() != tc.spec {
			t.Errorf("%q: Spec() = %q want %q", tc.in, got.Spec(), tc.spec)
		}
		if got.String() != tc.str {
			t.Errorf("%q: String() = %q want %q", tc.in, got.String(), tc.str)
		}
		// The spec parses back to the same endpoint, and so does what the
		// log shows of a TCP endpoint (copied from a log line to --port).
		if again, err := ParseEndpoint(got.Spec()); err != nil || again != got {
			t.Errorf("%q: round trip gave %+v, %v", tc.in, again, err)
		}
		if again, err := ParseEndpoint(got.String()); got.Kind == "tcp" && (err != nil || again != got) {
			t.Errorf("%q: String() %q parses as %+v, %v", tc.in, got.String(), again, err)
		}
	}
	bad := []struct{ in, msg string }{
		{"", "empty endpoint"},
		{"bogus:1", `unknown endpoint type "bogus"`},
		{"tcp", "missing port"},
		{"tcp:", "empty port"},
		{"tcp:abc", `port "abc" is not a number`},
		{"tcp:70000", `port "70000" is not a number from 0 to 65535`},
		{"tcp:-1", "is not a number from 0 to 65535"},
		{"tcp:1:2", "port given more than once"},
		{"tcp:1:port=2", "port given more than once"},
		{"tcp:1:bogus=x", `unknown parameter "bogus"`},
		{"tcp:1:interface=a:interface=b", "interface given twice"},
		{"tcp:interface=::1:abcd", "missing port"}, // ::1:abcd is one IPv6 address
		{"tcp:1:interface=::1:2:3:x", "port given more than once"},
		{"unix:", "empty address"},
		{"unix:/x:mode=999", `mode "999" is not an octal permission`},
		{"systemd:domain=INET", `index "" is not a number`},
		{"systemd:domain=IPX:index=0", "domain must be INET, INET6 or UNIX"},
		{"systemd:0", `unexpected "0"`},
		{"systemd:domain=INET", "or give name="},
		{"systemd:name=a:index=0", "give index or name, not both"},
		{"systemd:name=", "empty name"},
		{`systemd:name=a\:b`, `name "a:b" has a colon`},
		{"systemd:name=a:domain=IPX", "domain must be INET, INET6 or UNIX"},
		{"65536", "not a number from 0 to 65535"},
	}
	for _, tc := range bad {
		_, err := ParseEndpoint(tc.in)
		if err == nil {
			t.Errorf("%q: accepted", tc.in)
			continue
		}
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: error %q does not contain %q", tc.in, err, tc.msg)
		}
	}
}

func TestEndpointKey(t *testing.T) {
	a, _ := ParseEndpoint("tcp:80")
	b, _ := ParseEndpoint("tcp:80:interface=0.0.0.0")
	c, _ := ParseEndpoint("tcp:80:interface=127.0.0.1")
	if a.Key() != b.Key() {
		t.Errorf("all-interfaces keys differ: %q %q", a.Key(), b.Key())
	}
	if a.Key() == c.Key() {
		t.Errorf("distinct interfaces share a key %q", a.Key())
	}
}

// The index of a named socket comes from LISTEN_FDNAMES; a name not
// passed is an error listing those that were.
func TestSystemdIndex(t *testing.T) {
	for _, tc := range []struct {
		name, fdnames string
		n, want       int
		err           string
	}{
		{"poetry", "poetry", 1, 0, ""},
		{"admin", "web:admin", 2, 1, ""},
		{"web", "web:admin:web", 3, 0, `2 sockets named "web"`},
		{"poetry", "web:admin", 2, 0, `systemd passed no socket named "poetry" (passed: web, admin)`},
		{"poetry", "web", 2, 0, "(passed: web, unknown)"},
		{"admin", "web:admin", 1, 0, "(passed: web)"},
		{"poetry", "", 1, 0, "the 1 passed have no names (LISTEN_FDNAMES not set"},
	} {
		got, err := systemdIndex(tc.name, tc.fdnames, tc.n)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("%s in %q: %d, %v; want %d", tc.name, tc.fdnames, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s in %q: error %v, want one containing %q", tc.name, tc.fdnames, err, tc.err)
		}
	}
}
