//go:build !linux

package reactor

import "net"

// inheritKeepAlive leaves keep-alive to Go's per-accept setup where the
// kernel's inheritance of listener options is not relied on.
func inheritKeepAlive(*net.ListenConfig) {}
