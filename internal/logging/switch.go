package logging

import (
	"io"
	"sync"
)

// SwitchWriter forwards writes to a destination that can be replaced while
// loggers built on it are in use: the runner logs to stderr until the real
// sink is open, then switches, and services built earlier follow.
type SwitchWriter struct {
	mu sync.RWMutex
	w  io.Writer
}

// NewSwitchWriter returns a SwitchWriter writing to w.
func NewSwitchWriter(w io.Writer) *SwitchWriter { return &SwitchWriter{w: w} }

// Set replaces the destination.
func (s *SwitchWriter) Set(w io.Writer) {
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
}

func (s *SwitchWriter) Write(p []byte) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.w.Write(p)
}
