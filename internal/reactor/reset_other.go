//go:build !linux

package reactor

// resetByPeer is Linux-only (TCP_INFO); elsewhere a parked client that
// sent data and then reset stays queued until it is served.
func resetByPeer(int) bool { return false }
