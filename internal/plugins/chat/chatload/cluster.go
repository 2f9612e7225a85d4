package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// startCluster starts redis-server and n (the kind's suffix) twistd
// instances joined through it.
func startCluster(kind, n string) (*server, error) {
	count, err := strconv.Atoi(n)
	if err != nil || count < 1 {
		return nil, fmt.Errorf("unknown server %q (redisN: N instances, N ≥ 1)", kind)
	}
	rs, err := startProcess("redis-server", nil)
	if err != nil {
		return nil, err
	}
	c := &server{kind: kind, parts: []*server{rs}}
	for range count {
		inst, err := startProcess("twistd", []string{"--redis", "redis://" + rs.addr + "/0"})
		if err != nil {
			stopParts(c.parts)
			return nil, err
		}
		c.parts = append(c.parts, inst)
		c.addrs = append(c.addrs, inst.addr)
	}
	c.addr = c.addrs[0]
	c.cmd = c.parts[1].cmd // the first instance, for rss
	// An instance listens before its hub has subscribed; the log says when.
	for _, inst := range c.parts[1:] {
		if err := waitJoined(inst); err != nil {
			stopParts(c.parts)
			return nil, err
		}
	}
	return c, nil
}

func waitJoined(s *server) error {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(s.logDir + "/twistd.log")
		if strings.Contains(string(b), "joined the instances on redis") {
			return nil
		}
	}
	return fmt.Errorf("instance on %s did not join redis within 10 s", s.addr)
}

// stopParts stops the instances, then redis-server, and removes logs.
func stopParts(parts []*server) error {
	var errs []error
	for i := len(parts) - 1; i >= 0; i-- {
		errs = append(errs, parts[i].stop())
		if parts[i].logDir != "" {
			os.RemoveAll(parts[i].logDir)
		}
	}
	return errors.Join(errs...)
}
