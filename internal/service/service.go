// Package service is the service model of twistd (Twisted's
// twisted.application.service): named services that start and stop, an
// optional privileged-start phase that runs before any Start so the runner
// can drop privileges in between, and collections that start children in
// order and stop them in reverse.
//
// It imports nothing from the project so every plugin can use it.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Service is one long-lived part of an application.
//
// Start must return once the service is running (it must not block for the
// service's lifetime). Stop must return only when the service has really
// stopped; ctx carries the grace deadline, and once it is done the service
// must close whatever is left at once. Stop must be safe to call when Start
// was never called or failed (it then releases what PrivilegedStart took),
// and safe to call twice.
type Service interface {
	Name() string
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// PrivilegedStarter is implemented by services that need the starting user's
// privileges (binding port 21, opening a root-owned file). The runner calls
// PrivilegedStart on the whole tree before any Start, then drops privileges.
type PrivilegedStarter interface {
	PrivilegedStart(ctx context.Context) error
}

// Container is implemented by services that hold others (collections); it
// lets tools such as `--check` print the tree.
type Container interface {
	Services() []Service
}

// Describer is implemented by services that can say in one line what they
// are beyond their name (e.g. "tcp:10000:interface=127.0.0.1").
type Describer interface {
	Describe() string
}

// Collection is a Service holding other services (Twisted's MultiService).
// Children start in the order they were added and stop in reverse, all under
// the one deadline given to Stop.
type Collection struct {
	name string
	log  *slog.Logger

	mu       sync.Mutex
	children []Service
	stopped  bool
}

// NewCollection returns an empty collection. A nil logger means slog.Default.
func NewCollection(name string, log *slog.Logger) *Collection {
	if log == nil {
		log = slog.Default()
	}
	return &Collection{name: name, log: log}
}

// Name returns the collection's name.
func (c *Collection) Name() string { return c.name }

// Add appends a child. Names must be non-empty and unique within the
// collection.
func (c *Collection) Add(s Service) error {
	if s == nil {
		return errors.New("service: nil service")
	}
	name := s.Name()
	if name == "" {
		return fmt.Errorf("service: a service in %q has no name", c.name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range c.children {
		if ch.Name() == name {
			return fmt.Errorf("service: %q already has a service named %q", c.name, name)
		}
	}
	c.children = append(c.children, s)
	return nil
}

// Services returns the children in start order.
func (c *Collection) Services() []Service {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Service(nil), c.children...)
}

// Lookup returns the child with the given name (Twisted's getServiceNamed).
func (c *Collection) Lookup(name string) (Service, bool) {
	for _, s := range c.Services() {
		if s.Name() == name {
			return s, true
		}
	}
	return nil, false
}

type graceKey struct{}

// WithGrace returns a ctx for PrivilegedStart and Start that bounds the
// unwinding after a failed start: the children already started are
// stopped under this grace, as a shutdown would stop them. Without it the
// unwind waits for them without limit.
func WithGrace(ctx context.Context, grace time.Duration) context.Context {
	return context.WithValue(ctx, graceKey{}, grace)
}

// unwind stops c after a failed start. The start's own ctx may be
// cancelled already (a signal abandoned the start-up), so the stop gets a
// fresh deadline from the grace ctx carries.
func (c *Collection) unwind(ctx context.Context) error {
	stopCtx := context.WithoutCancel(ctx)
	if grace, ok := ctx.Value(graceKey{}).(time.Duration); ok {
		var cancel context.CancelFunc
		stopCtx, cancel = context.WithTimeout(stopCtx, grace)
		defer cancel()
	}
	return c.Stop(stopCtx)
}

// PrivilegedStart runs the privileged phase of every child in order. On a
// failure the collection is stopped (so sockets already bound close) and
// the error is returned.
func (c *Collection) PrivilegedStart(ctx context.Context) error {
	for _, s := range c.Services() {
		ps, ok := s.(PrivilegedStarter)
		if !ok {
			continue
		}
		if err := ps.PrivilegedStart(ctx); err != nil {
			return errors.Join(err, c.unwind(ctx))
		}
	}
	return nil
}

// Start starts every child in order. If one fails, the whole collection is
// stopped in reverse (children not yet started may hold what their
// PrivilegedStart took) and the returned error includes the stop errors.
func (c *Collection) Start(ctx context.Context) error {
	for _, s := range c.Services() {
		if ctx.Err() != nil {
			// Abandoned (a signal during start-up): start nothing more.
			return errors.Join(context.Cause(ctx), c.unwind(ctx))
		}
		if err := s.Start(ctx); err != nil {
			return errors.Join(err, c.unwind(ctx))
		}
		c.log.Info("started "+label(s), "system", c.name)
	}
	return nil
}

// Stop stops every child in reverse order under ctx's deadline. Children
// still to be stopped when the deadline has passed get an expired context,
// which tells them to close hard; they are named in the log. A second Stop
// does nothing.
func (c *Collection) Stop(ctx context.Context) error {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return nil
	}
	c.stopped = true
	c.mu.Unlock()
	kids := c.Services()
	var errs []error
	var late []string
	for i := len(kids) - 1; i >= 0; i-- {
		s := kids[i]
		if ctx.Err() != nil {
			late = append(late, s.Name())
		}
		if err := s.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping %s: %w", s.Name(), err))
			c.log.Error(fmt.Sprintf("stopping %s: %v", s.Name(), err), "system", c.name)
			continue
		}
		c.log.Info("stopped "+s.Name(), "system", c.name)
	}
	if len(late) > 0 {
		c.log.Warn("grace period over; closed without waiting: "+strings.Join(late, ", "), "system", c.name)
	}
	return errors.Join(errs...)
}

// label is the service's name with its description, if any.
func label(s Service) string {
	if d, ok := s.(Describer); ok {
		if desc := d.Describe(); desc != "" {
			return s.Name() + " (" + desc + ")"
		}
	}
	return s.Name()
}

// Tree renders s and its descendants, one per line, indented by depth.
func Tree(s Service) string {
	var b strings.Builder
	var walk func(s Service, depth int)
	walk = func(s Service, depth int) {
		b.WriteString(strings.Repeat("  ", depth))
		b.WriteString(label(s))
		b.WriteByte('\n')
		if c, ok := s.(Container); ok {
			for _, k := range c.Services() {
				walk(k, depth+1)
			}
		}
	}
	walk(s, 0)
	return b.String()
}
