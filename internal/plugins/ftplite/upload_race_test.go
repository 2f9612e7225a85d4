package ftplite

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestUploadTempFilesSurviveFlips uploads into "x/" while another
// goroutine keeps turning x from a directory into a symbolic link to
// "other" and back. Uploads are cut (a reset of the data connection) or
// completed; either way no hidden temporary file may stay behind, in the
// directory x was or in the one the link led to. Bounded: 40 cut
// uploads, 400 in all or 10 s, whichever ends first.
func TestUploadTempFilesSurviveFlips(t *testing.T) {
	ts := newTestServer(t, nil)
	x, link := filepath.Join(ts.root, "x"), filepath.Join(ts.root, "xlink")
	must(t, os.Mkdir(x, 0o755))
	must(t, os.Mkdir(filepath.Join(ts.root, "other"), 0o755))
	must(t, os.Symlink("other", link))
	// x and xlink swap places atomically, so x always exists.
	exchange := func() error {
		return unix.Renameat2(unix.AT_FDCWD, x, unix.AT_FDCWD, link, unix.RENAME_EXCHANGE)
	}
	if err := exchange(); err != nil {
		t.Skipf("this file system cannot exchange names (renameat2 RENAME_EXCHANGE): %v", err)
	}

	var flips atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			exchange()
			flips.Add(1)
		}
	})
	stopFlipping := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopFlipping)

	c := dialCtrl(t, ts.addr)
	c.login(testUser, testPassword)
	c.expect(200, "TYPE I")
	var cut, done, refused int
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; cut < 40 && i < 400 && time.Now().Before(deadline); i++ {
		d := c.epsv()
		if code, msg := c.cmd("STOR x/f"); code != 150 {
			d.Close()
			if code != 550 {
				t.Fatalf("STOR: %d %s", code, msg)
			}
			refused++
			continue
		}
		if i%4 == 3 {
			d.Write([]byte("complete upload"))
			d.Close()
			if code, msg := c.read(); code != 226 && code != 550 && code != 426 {
				t.Fatalf("upload end: %d %s", code, msg)
			}
			done++
			continue
		}
		c.cutUpload(d, "reset")
		cut++
	}
	stopFlipping()
	// The session's last job has answered, so nothing is still being
	// cleaned up.
	c.expect(200, "NOOP")

	var left []string
	filepath.WalkDir(ts.root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".ftp-upload-") {
			left = append(left, strings.TrimPrefix(p, ts.root))
		}
		return nil
	})
	t.Logf("%d flips; %d uploads cut, %d completed, %d refused", flips.Load(), cut, done, refused)
	if cut < 10 {
		t.Fatalf("only %d uploads were cut: the race was not exercised", cut)
	}
	if len(left) > 0 {
		t.Errorf("%d temporary files left behind: %v", len(left), left)
	}
}
