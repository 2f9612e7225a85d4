// Package plugin is how a Go package becomes a twistd plugin: it calls
// Register from its init function with a Maker, and a main package that
// imports it (beside package twistd) serves it as `twistd NAME [options]`.
//
//	func init() {
//		plugin.Register(plugin.Maker{
//			Name:        "qotd",
//			Description: "quote of the day (RFC 865) over TCP and UDP",
//			Options: func(fs *pflag.FlagSet) plugin.Build {
//				port := fs.String("port", "17", "TCP and UDP port, or a full endpoint")
//				quote := fs.String("quote", "", "file holding the quote")
//				plugin.MarkPath(fs, "quote", plugin.PathUse{Max: 512})
//				return func(env plugin.Env) (service.Service, error) {
//					... // validate, build the service tree; no I/O here
//				}
//			},
//		})
//	}
//
// Options declares the plugin's flags (github.com/spf13/pflag) and returns
// the Build that turns their parsed values into a service tree. Build
// must not bind or open anything: that happens when the services start,
// so a bad option is reported before the daemon detaches, with exit 2.
// The runner gives every plugin daemonization, the pidfile, logs (the
// Env's logger, or slog.Default), privilege drop, systemd integration,
// reload and graceful shutdown.
//
// The types are aliases of the implementation in twistd's
// internal/plugins; the fields are documented there.
package plugin

import (
	"os"

	"github.com/spf13/pflag"

	"github.com/twistd-go/twistd/internal/plugins"
)

// Maker describes one plugin (Twisted's IServiceMaker): Name (what users
// type), Description (one line in `twistd --help`), Long (shown by
// `twistd NAME --help`), Options (flags and the Build), and Commands (tools
// run as `twistd NAME COMMAND`, e.g. ftp-lite's passwd).
type Maker = plugins.Maker

// Build makes the plugin's service from its parsed options and the Env.
// An error it returns is a usage error (exit 2), reported before anything
// starts.
type Build = plugins.Build

// Env is what the runner gives a Build: the name the service must carry
// (the plugin's, or the one an application file gives it), its logger,
// the runner's --max-connections (set it on each Port) and the Metrics to
// count through.
type Env = plugins.Env

// Metrics is what one service counts through (Env.Metrics): Port() for
// the reactor's connection series of its ports, Registerer() for series
// of its own, every one labelled service="NAME". A nil *Metrics (no
// --metrics) counts nothing.
type Metrics = plugins.Metrics

// Command is a tool a plugin offers beside serving, run in the foreground
// as `twistd PLUGIN NAME ARGS...`.
type Command = plugins.Command

// RunCommand runs a Command with its arguments and standard streams.
type RunCommand = plugins.RunCommand

// PathUse says how a service uses the file or directory an option names
// (a directory or a file; opened before or after the chroot; read by the
// starting user only; a size limit).
type PathUse = plugins.PathUse

// Register adds a plugin. It panics on an empty, reserved or duplicate
// name or a nil Options: programming errors that must fail at start-up.
// Call it from init.
func Register(m Maker) { plugins.Register(m) }

// MarkRequired marks flags that must be given, on the command line or in
// an application file.
func MarkRequired(fs *pflag.FlagSet, names ...string) { plugins.MarkRequired(fs, names...) }

// MarkPath declares that the flag name holds a path used as use says: a
// relative path written in an application file is then resolved against
// the file's directory, and `twistd check` opens it as the service will.
func MarkPath(fs *pflag.FlagSet, name string, use PathUse) { plugins.MarkPath(fs, name, use) }

// Open opens a path an option named by the rule its PathUse gives (a
// regular file or a directory, never a FIFO or device), with an error
// naming the path.
func Open(path string, use PathUse) (*os.File, error) { return plugins.Open(path, use) }

// ReadFile reads a regular file of at most max bytes (0: no limit), with
// an error naming the path and what is wrong with it.
func ReadFile(path string, max int64) ([]byte, error) { return plugins.ReadFile(path, max) }
