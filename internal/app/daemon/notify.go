package daemon

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

// Notify sends state (sd_notify(3): "READY=1", "STOPPING=1", "WATCHDOG=1",
// several separated by newlines) to the service manager named by
// NOTIFY_SOCKET. Without that variable it does nothing and returns false.
func Notify(state string) (bool, error) {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return false, nil
	}
	// "@name" is an abstract socket; Go's resolver maps a leading @ to it.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("sd_notify %s: %w", name, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("sd_notify %s: %w", name, err)
	}
	return true, nil
}

// WatchdogInterval returns how often the service manager expects
// "WATCHDOG=1" (half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises),
// or 0 when the watchdog is off or meant for another process.
func WatchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if p := os.Getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}
