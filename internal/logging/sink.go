package logging

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"gopkg.in/natefinch/lumberjack.v2"
)

// Config says where log lines go.
type Config struct {
	// File is the log file path; "-" or "" means stdout.
	File string
	// MaxSizeMB is the size at which the file is rotated (lumberjack counts
	// whole MiB; twistd rotates at 1,000,000 bytes).
	MaxSizeMB int
	// MaxFiles is how many rotated files are kept; 0 keeps all.
	MaxFiles int
}

// Sink is an open log destination.
type Sink struct {
	io.Writer
	file *lumberjack.Logger // nil for stdout
}

// Open opens the destination. For a file it checks at once that the file
// can be opened, so a bad path is reported at start-up, not lost later.
func Open(c Config, stdout io.Writer) (*Sink, error) {
	if c.File == "" || c.File == "-" {
		return &Sink{Writer: stdout}, nil
	}
	path, err := filepath.Abs(c.File)
	if err != nil {
		return nil, fmt.Errorf("log file %s: %w", c.File, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("log file %s: %w", path, pathErr(err))
	}
	f.Close()
	size := c.MaxSizeMB
	if size <= 0 {
		size = 1
	}
	lj := &lumberjack.Logger{Filename: path, MaxSize: size, MaxBackups: c.MaxFiles}
	return &Sink{Writer: lj, file: lj}, nil
}

// Path is the log file's path, or "" for stdout.
func (s *Sink) Path() string {
	if s.file == nil {
		return ""
	}
	return s.file.Filename
}

// Close closes the file, if any.
func (s *Sink) Close() error {
	if s.file == nil {
		return nil
	}
	return s.file.Close()
}

// pathErr drops the *PathError wrapper whose path the caller already shows.
func pathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
