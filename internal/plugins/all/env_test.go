package all_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/twistd-go/twistd/internal/plugins"
	_ "github.com/twistd-go/twistd/internal/plugins/all"
	"github.com/twistd-go/twistd/internal/reactor"
	"github.com/twistd-go/twistd/internal/service"
)

// ports returns every listening port in the tree under s.
func ports(s service.Service) []*reactor.Port {
	var out []*reactor.Port
	if p, ok := s.(*reactor.Port); ok {
		out = append(out, p)
	}
	if c, ok := s.(service.Container); ok {
		for _, k := range c.Services() {
			out = append(out, ports(k)...)
		}
	}
	return out
}

// Every compiled-in plugin hands the runner's --max-connections and its
// connection metrics to each port it builds, so neither is lost for a
// plugin that forgets: the runner has no other way to reach a port.
func TestEveryPortTakesTheEnvironment(t *testing.T) {
	set := plugins.NewMetricSet(prometheus.NewRegistry())
	for _, m := range plugins.All() {
		fs := pflag.NewFlagSet(m.Name, pflag.ContinueOnError)
		build := m.Options(fs)
		for _, f := range plugins.MissingRequired(fs) {
			// Build opens nothing, so any path will do.
			if err := fs.Set(f[2:], "/nonexistent"); err != nil {
				t.Fatal(err)
			}
		}
		svc, err := build(plugins.Env{Name: m.Name, MaxConnections: 7, Metrics: set.For(m.Name)})
		if err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		ps := ports(svc)
		if len(ps) == 0 {
			t.Errorf("%s: no listening port found in its tree", m.Name)
		}
		want := set.For(m.Name).Port()
		for _, p := range ps {
			if p.MaxConnections != 7 || p.Metrics != want {
				t.Errorf("%s: port %s has MaxConnections %d and metrics %p; want 7 and %p", m.Name, p.Name(), p.MaxConnections, p.Metrics, want)
			}
		}
	}
}
