package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/twistd-go/twistd/internal/app/service"
	"github.com/twistd-go/twistd/internal/logging"
	"github.com/twistd-go/twistd/internal/plugins"
	"github.com/twistd-go/twistd/internal/reactor"
)

// runner carries one run of the lifecycle (DESIGN.md): build → open logs →
// privileged start → start → wait for a signal → stop in reverse → exit.
type runner struct {
	opts   *Options
	name   string // application name: the plugin or application file's
	out    *logging.SwitchWriter
	log    *slog.Logger
	root   *service.Collection
	stdout io.Writer
	stderr io.Writer
}

// newRunner checks the runner options and sets up logging to stderr until
// the real sink is open, so services built now log to the right place.
func newRunner(opts *Options, flags *pflag.FlagSet, name string, stdout, stderr io.Writer) (*runner, error) {
	for _, f := range notYet {
		if flags.Changed(f) {
			return nil, usageErrorf("--%s is not implemented yet", f)
		}
	}
	if !opts.NoDaemon {
		return nil, usageErrorf("daemon mode is not implemented yet; use --nodaemon (-n)")
	}
	if opts.Grace < 0 {
		return nil, usageErrorf("invalid value %q for --grace: must not be negative", opts.Grace)
	}
	if opts.MaxConnections < 0 {
		return nil, usageErrorf("invalid value %d for --max-connections: must not be negative", opts.MaxConnections)
	}
	if opts.LogMaxSize <= 0 {
		return nil, usageErrorf("invalid value %d for --logfile-max-size: must be at least 1 (MiB)", opts.LogMaxSize)
	}
	if opts.LogMaxFiles < 0 {
		return nil, usageErrorf("invalid value %d for --logfile-max-files: must not be negative", opts.LogMaxFiles)
	}
	r := &runner{opts: opts, name: name, out: logging.NewSwitchWriter(stderr), stdout: stdout, stderr: stderr}
	r.log = slog.New(logging.NewTextHandler(r.out, nil))
	r.root = service.NewCollection(name, r.log)
	return r, nil
}

// add builds a plugin's service and adds it to the application.
func (r *runner) add(pluginName, serviceName string, build plugins.Build) error {
	svc, err := build(plugins.Env{Name: serviceName, Log: r.log})
	if err != nil {
		return usageErrorf("%s: %v", pluginName, err)
	}
	if err := r.root.Add(svc); err != nil {
		return usageErrorf("%v", err)
	}
	return nil
}

// run builds the plugin's service and runs it: the single-plugin path.
func run(opts *Options, flags *pflag.FlagSet, name string, build plugins.Build, stdout, stderr io.Writer) error {
	r, err := newRunner(opts, flags, name, stdout, stderr)
	if err != nil {
		return err
	}
	if err := r.add(name, name, build); err != nil {
		return err
	}
	return r.run()
}

func (r *runner) run() error {
	// Signals are caught before any slow work, so a SIGTERM during start-up
	// is a clean stop rather than the default kill.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	// A closed stdout must not kill us with SIGPIPE; writes then fail instead.
	signal.Ignore(syscall.SIGPIPE)

	sink, err := logging.Open(logging.Config{File: r.opts.Logfile, MaxSizeMB: r.opts.LogMaxSize, MaxFiles: r.opts.LogMaxFiles}, r.stdout)
	if err != nil {
		return failure(err)
	}
	defer sink.Close()
	r.out.Set(sink)
	slog.SetDefault(r.log)

	r.log.Info(fmt.Sprintf("twistd %s (%s %s) starting up", version(), runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH))
	r.log.Info(fmt.Sprintf("application %s, pid %d", r.name, os.Getpid()))

	ctx := reactor.WithMaxConnections(context.Background(), r.opts.MaxConnections)
	if err := r.root.PrivilegedStart(ctx); err != nil {
		return r.startFailed(err)
	}
	if err := r.root.Start(ctx); err != nil {
		return r.startFailed(err)
	}
	r.log.Info("started")

	sig := <-sigs
	r.log.Info(fmt.Sprintf("received %s, shutting down", signalName(sig)))
	return r.stop(sigs)
}

// stop stops the tree under the grace period; a second signal cuts it short.
func (r *runner) stop(sigs <-chan os.Signal) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.Grace)
	defer cancel()
	stopped := make(chan struct{})
	forcedBy := make(chan os.Signal, 1)
	go func() {
		select {
		case s := <-sigs:
			r.log.Warn(fmt.Sprintf("received %s again, closing everything now", signalName(s)))
			forcedBy <- s
			cancel()
		case <-stopped:
		}
	}()
	err := r.root.Stop(ctx)
	close(stopped)
	select {
	case s := <-forcedBy:
		r.log.Info("shut down (forced)")
		return failure(fmt.Errorf("shutdown forced by a second %s", signalName(s)))
	default:
	}
	if err != nil {
		r.log.Info("shut down with errors")
		return failure(err)
	}
	r.log.Info("shut down")
	return nil
}

func (r *runner) startFailed(err error) error {
	r.log.Error("start-up failed: " + oneLine(err))
	r.log.Info("shut down")
	return failure(errors.New(oneLine(err)))
}

func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

func signalName(s os.Signal) string {
	if ss, ok := s.(syscall.Signal); ok {
		switch ss {
		case syscall.SIGINT:
			return "SIGINT"
		case syscall.SIGTERM:
			return "SIGTERM"
		}
	}
	return s.String()
}
