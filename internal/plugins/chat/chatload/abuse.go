package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twistd-go/twistd/internal/plugins/chat/wire"
)

// runBadFrames sends -bad-frames spoofed broadcasts, each answered with a
// 403, over as many connections as the server makes it use, and reports
// what they cost the server's log (measured after it stopped, so lines
// written at shutdown count too).
func runBadFrames(ctx context.Context, s *server) (string, error) {
	if s.logDir == "" {
		return "n/a: this server writes no log", nil
	}
	before, _, err := logSize(s.logDir)
	if err != nil {
		return "", err
	}
	total, conns := 0, 0
	for total < *badFrames {
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("%d of %d frames answered: %w", total, *badFrames, err)
		}
		n, err := spoof(ctx, s.addr, *badFrames-total)
		if err != nil {
			return "", err
		}
		total += n
		conns++
	}
	if err := s.stop(); err != nil {
		return "", err
	}
	after, lines, err := logSize(s.logDir)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("frames=%d connections=%d log_bytes=%d log_lines=%d log_bytes_per_100k_frames=%d",
		total, conns, after-before, lines, (after-before)*100000/int64(total)), nil
}

// spoof logs in on one connection and sends up to n broadcasts naming
// another sender, reading the replies as they come. It returns how many
// were answered with a 403 before the server closed the connection or all
// n were.
func spoof(ctx context.Context, addr string, n int) (int, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	frame := wire.AppendFrame(nil, 1, wire.CmdBroadcast, []byte(`{"chat_from":"alice","chat_content":"spoofed"}`))
	const perWrite = 1000
	batch := bytes.Repeat(frame, perWrite)
	if _, err := c.Write(wire.AppendFrame(nil, 1, wire.CmdVerify, []byte(`{"phone_number":"mallory"}`))); err != nil {
		return 0, err
	}
	go func() {
		// Stops at the first failed write: the server closed.
		for left := n; left > 0; left -= perWrite {
			if _, err := c.Write(batch[:min(left, perWrite)*len(frame)]); err != nil {
				return
			}
		}
	}()
	var dec wire.Decoder
	buf := make([]byte, 64<<10)
	answered := 0
	for answered < n {
		k, err := c.Read(buf)
		dec.Feed(buf[:k], func(f wire.Frame) bool {
			if f.Command == wire.CmdError && bytes.Contains(f.Body, []byte(`"code":403`)) {
				answered++
			}
			return true
		})
		if err != nil {
			if answered == 0 {
				return 0, fmt.Errorf("connection closed before any frame was answered: %v", err)
			}
			break
		}
	}
	return answered, nil
}

// logSize returns the bytes and lines of every file in dir (the log and
// its rotated backups).
func logSize(dir string) (size int64, lines int, err error) {
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		return 0, 0, err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return 0, 0, err
		}
		size += int64(len(b))
		lines += bytes.Count(b, []byte("\n"))
	}
	return size, lines, nil
}

// runStall opens -stalled connections that each send 65,000 bytes of a
// 65,536-byte frame and then nothing, and reports the server's RSS while
// they are held and how long it takes to drop them.
func runStall(ctx context.Context, s *server) (string, error) {
	const frameLen, sent = 65536, 65000
	idle, err := s.rss()
	if err != nil {
		return "", err
	}
	part := wire.AppendFrame(nil, 1, wire.CmdBroadcast, make([]byte, frameLen-wire.HeaderLen))[:sent]
	for i := wire.HeaderLen; i < len(part); i++ {
		part[i] = 'x'
	}
	n := *stalled
	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	sem := make(chan struct{}, 200)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
			if err != nil {
				errs <- err
				return
			}
			conns[i] = c
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(part); err != nil {
				errs <- fmt.Errorf("client %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return "", err
	}
	stalledAt := time.Now()
	// Each client waits for the server to drop it.
	dropped := make([]time.Duration, 0, n)
	var mu sync.Mutex
	var open atomic.Int64
	open.Store(int64(n))
	for _, c := range conns {
		go func() {
			if dl, ok := ctx.Deadline(); ok {
				c.SetReadDeadline(dl)
			}
			var b [512]byte
			for {
				if _, err := c.Read(b[:]); err != nil {
					break
				}
			}
			mu.Lock()
			dropped = append(dropped, time.Since(stalledAt))
			mu.Unlock()
			open.Add(-1)
		}()
	}
	// The server's memory once it has read what was sent: the highest of
	// samples over two seconds, or until it started dropping.
	var held int64
	for t := time.Now(); time.Since(t) < 2*time.Second && open.Load() == int64(n); time.Sleep(100 * time.Millisecond) {
		r, err := s.rss()
		if err != nil {
			return "", err
		}
		held = max(held, r)
	}
	for open.Load() > 0 {
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%d of %d stalled clients still connected: %w", open.Load(), n, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	mu.Lock()
	slices.Sort(dropped)
	first, last := dropped[0], dropped[len(dropped)-1]
	mu.Unlock()
	return fmt.Sprintf("stalled=%d sent_each=%d rss_idle=%.1fMiB rss_held=%.1fMiB per_conn=%.1fKiB dropped_after=%v..%v",
		n, sent, mib(idle), mib(held), float64(held-idle)/float64(n)/1024, first.Round(100*time.Millisecond), last.Round(100*time.Millisecond)), nil
}
