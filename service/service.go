// Package service is twistd's service model (Twisted's
// twisted.application.service), for plugin authors.
//
// A plugin's Build returns a Service: something with a name that starts
// and stops. Start must return once the service runs; Stop must return
// only once it has really stopped, and close at once whatever is left
// when its ctx (which carries the shutdown's grace deadline) is done. A
// service that must bind a socket or open a root-only file implements
// PrivilegedStarter: the runner calls PrivilegedStart on the whole tree,
// then drops privileges, then calls Start. A Collection holds services,
// starts them in order and stops them in reverse under one deadline.
//
// The types are aliases of the implementation in twistd's internal/service;
// their methods are documented there and below.
package service

import (
	"log/slog"

	"github.com/twistd-go/twistd/internal/service"
)

// Service is one long-lived part of an application: Name, Start(ctx) and
// Stop(ctx). Stop must be safe to call when Start was never called or
// failed, and twice.
type Service = service.Service

// PrivilegedStarter is implemented by services that need the starting
// user's privileges (binding port 21, reading a key): PrivilegedStart(ctx)
// runs for the whole tree before any Start, before the privilege drop.
type PrivilegedStarter = service.PrivilegedStarter

// Container is implemented by services that hold others; `twistd check`
// prints the tree through it.
type Container = service.Container

// Describer is implemented by services that say in one line what they
// are beyond their name, e.g. "tcp:10000:interface=127.0.0.1".
type Describer = service.Describer

// Collection is a Service holding others (Twisted's MultiService). Add
// children with Add (names unique within the collection); they start in
// order and stop in reverse.
type Collection = service.Collection

// NewCollection returns an empty collection; a nil logger means
// slog.Default.
func NewCollection(name string, log *slog.Logger) *Collection {
	return service.NewCollection(name, log)
}
