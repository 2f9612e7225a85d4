package daemon

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Alive reports whether pid exists and is not a zombie waiting for its
// parent to reap it.
func Alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	st, err := procStat(pid)
	return err != nil || st[0] != "Z"
}

// procStat returns the fields of /proc/PID/stat after the command name,
// starting with the state (field 3 of proc(5)).
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, bare(err)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, errors.New("unreadable /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return nil, errors.New("unreadable /proc stat")
	}
	return f, nil
}

// userHZ is the unit of /proc/PID/stat's start time: USER_HZ, 100 on every
// Linux architecture Go supports.
const userHZ = 100

// Uptime is how long pid has run: now since boot minus its start since
// boot (proc(5) field 22).
func Uptime(pid int) (time.Duration, error) {
	st, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	if st[0] == "Z" {
		return 0, errors.New("it has exited")
	}
	ticks, err := strconv.ParseUint(st[19], 10, 64)
	if err != nil {
		return 0, errors.New("unreadable /proc stat")
	}
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0, bare(err)
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, errors.New("unreadable /proc/uptime")
	}
	secs, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, errors.New("unreadable /proc/uptime")
	}
	up := time.Duration(secs*float64(time.Second)) - time.Duration(ticks)*time.Second/userHZ
	return max(up, 0), nil
}
