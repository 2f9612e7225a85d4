// Package twistd runs network plugins as proper Unix daemons, in the
// manner of Twisted's twistd: daemonization with a readiness handshake, a
// locked pidfile, rotating logs, privilege drop after binding, systemd
// notification and socket activation, graceful shutdown and zero-downtime
// reload, metrics and health endpoints.
//
// A program of your own that runs twistd with the stock plugins and one
// of yours is a main package of a few lines:
//
//	package main
//
//	import (
//		"os"
//
//		"github.com/twistd-go/twistd"
//		_ "github.com/twistd-go/twistd/plugins/standard" // chat, echo, fastpoetry, ftp-lite
//		_ "example.com/qotd"                              // a plugin of your own
//	)
//
//	func main() { os.Exit(twistd.Main()) }
//
// Plugins register themselves with package plugin; they build their
// services from package service and serve connections through package
// reactor. Those four packages are the public API (see the README's
// compatibility promise); everything under internal/ may change.
package twistd

import (
	"os"

	"github.com/twistd-go/twistd/internal/app"
)

// Main runs the twistd command line (os.Args) with the plugins registered
// so far and returns the process exit code: 0 success, 1 runtime failure,
// 2 usage error, 3 (status) not running. Call it from main and pass the
// code to os.Exit; it never exits itself.
func Main() int {
	return app.Main(os.Args[1:], os.Stdout, os.Stderr)
}
