package app

import "github.com/twistd-go/twistd/internal/plugins"

// env is the environment of the service named name: everything runner-wide
// a plugin needs reaches it here, never through a context value (issue 12).
func (r *runner) env(name string) plugins.Env {
	return plugins.Env{Name: name, Log: r.log, MaxConnections: r.set.maxConnections, Metrics: r.metrics.forService(name)}
}
