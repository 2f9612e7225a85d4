package app

import (
	"errors"
	"fmt"
)

// Exit codes (DESIGN.md); turned into os.Exit only in main.
const (
	ExitOK         = 0
	ExitFailure    = 1 // runtime failure: start-up failed, stop timed out
	ExitUsage      = 2 // bad flag, unknown plugin, invalid application file
	ExitNotRunning = 3 // `status`: not running (LSB)
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
	help string // for usage errors: the command whose --help to point at
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// failure wraps err as a runtime failure (exit 1).
func failure(err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: ExitFailure, err: err}
}

// usageErrorf makes a usage error (exit 2).
func usageErrorf(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// pluginUsageErrorf makes a usage error about a plugin's options; the
// message points at that plugin's --help.
func pluginUsageErrorf(plugin, format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(plugin+": "+format, args...), help: "twistd " + plugin}
}

// helpOf names the command whose --help a usage error should point at.
func helpOf(err error) string {
	var ee *exitError
	if errors.As(err, &ee) && ee.help != "" {
		return ee.help
	}
	return "twistd"
}

// noHelp marks an error whose exit code is ExitUsage although no option
// of this command was wrong (a reload whose new process refused its file).
const noHelp = "-"

// withCode returns err carrying the given exit code.
func withCode(code int, err error) error {
	return &exitError{code: code, err: err}
}

// codeOf returns the exit code for an error returned by the command tree.
// Errors without a code come from cobra's own parsing, so they are usage
// errors.
func codeOf(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return ExitUsage
}
