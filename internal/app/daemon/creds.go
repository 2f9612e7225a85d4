package daemon

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"syscall"
)

// Credentials are the ids the daemon switches to after binding.
//
// Names are looked up through os/user. A static (CGO_ENABLED=0) binary reads
// /etc/passwd and /etc/group only, so users known only to NSS (LDAP, sssd)
// must be given as numbers.
type Credentials struct {
	UID, GID  int   // -1: unchanged
	Groups    []int // supplementary groups set with the drop
	User      string
	Effective bool // --euid: only the effective ids change
}

// Requested reports whether any switch was asked for.
func (c *Credentials) Requested() bool { return c.UID >= 0 || c.GID >= 0 }

// ResolveCredentials looks up --uid/--gid (names or numbers, numbers tried
// first). With only a user, the group is the user's primary group; the
// supplementary groups are the user's groups, or none when only a group is
// given. It has no side effects, so the runner calls it before daemonizing.
func ResolveCredentials(uidArg, gidArg string, effective bool) (*Credentials, error) {
	c := &Credentials{UID: -1, GID: -1, Effective: effective}
	var u *user.User
	if uidArg != "" {
		var err error
		if n, nerr := strconv.Atoi(uidArg); nerr == nil {
			if n < 0 {
				return nil, fmt.Errorf("invalid --uid %q", uidArg)
			}
			c.UID = n
			u, err = user.LookupId(uidArg)
			if err != nil && gidArg == "" {
				return nil, fmt.Errorf("uid %d has no passwd entry; give --gid as well", n)
			}
		} else {
			u, err = user.Lookup(uidArg)
			if err != nil {
				return nil, fmt.Errorf("unknown user %q", uidArg)
			}
			c.UID, _ = strconv.Atoi(u.Uid)
		}
		if u != nil {
			c.User = u.Username
			c.GID, _ = strconv.Atoi(u.Gid)
		}
	}
	if gidArg != "" {
		if n, err := strconv.Atoi(gidArg); err == nil {
			if n < 0 {
				return nil, fmt.Errorf("invalid --gid %q", gidArg)
			}
			c.GID = n
		} else {
			g, err := user.LookupGroup(gidArg)
			if err != nil {
				return nil, fmt.Errorf("unknown group %q", gidArg)
			}
			c.GID, _ = strconv.Atoi(g.Gid)
		}
	}
	if u != nil {
		ids, err := u.GroupIds()
		if err != nil {
			return nil, fmt.Errorf("groups of user %s: %w", u.Username, err)
		}
		for _, s := range ids {
			if n, err := strconv.Atoi(s); err == nil {
				c.Groups = append(c.Groups, n)
			}
		}
	}
	if c.GID >= 0 && !slices.Contains(c.Groups, c.GID) {
		c.Groups = append(c.Groups, c.GID)
	}
	slices.Sort(c.Groups)
	return c, nil
}

// String describes the target ids for log lines.
func (c *Credentials) String() string {
	return fmt.Sprintf("uid/gid %s/%s", idString(c.UID), idString(c.GID))
}

func idString(n int) string {
	if n < 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

var errNotRoot = errors.New("not running as root")

// Possible reports whether Drop can succeed: as root, or when the process
// already has the target ids. The runner checks it before daemonizing.
func (c *Credentials) Possible() error {
	if !c.Requested() || os.Geteuid() == 0 {
		return nil
	}
	if (c.UID < 0 || c.UID == os.Geteuid()) && (c.GID < 0 || c.GID == os.Getegid()) {
		return nil
	}
	return errNotRoot
}

// Drop switches to the credentials: supplementary groups, then the group,
// then the user (setgroups and setgid need root, so setuid comes last). Go
// applies each call to every thread of the process. Without --euid the
// real, effective and saved ids all change, so the switch cannot be undone.
// It returns a warning when there was nothing to drop because the process
// already runs with the target ids (e.g. started by systemd with User=).
func (c *Credentials) Drop() (warning string, err error) {
	if !c.Requested() {
		return "", nil
	}
	uid, gid := c.UID, c.GID
	if uid < 0 {
		uid = os.Geteuid()
	}
	if gid < 0 {
		gid = os.Getegid()
	}
	if os.Geteuid() != 0 {
		if os.Geteuid() == uid && os.Getegid() == gid {
			return fmt.Sprintf("already running as uid %d gid %d; nothing to drop", uid, gid), nil
		}
		return "", errNotRoot
	}
	if err := syscall.Setgroups(c.Groups); err != nil {
		return "", fmt.Errorf("cannot set groups %v: %w", c.Groups, err)
	}
	if c.Effective {
		if err := syscall.Setegid(gid); err != nil {
			return "", fmt.Errorf("cannot set effective gid %d: %w", gid, err)
		}
		if err := syscall.Seteuid(uid); err != nil {
			return "", fmt.Errorf("cannot set effective uid %d: %w", uid, err)
		}
	} else {
		if err := syscall.Setresgid(gid, gid, gid); err != nil {
			return "", fmt.Errorf("cannot set gid %d: %w", gid, err)
		}
		if err := syscall.Setresuid(uid, uid, uid); err != nil {
			return "", fmt.Errorf("cannot set uid %d: %w", uid, err)
		}
	}
	if os.Geteuid() != uid || os.Getegid() != gid {
		return "", errors.New("privilege drop did not take effect")
	}
	if !c.Effective && uid != 0 && syscall.Setuid(0) == nil {
		return "", errors.New("privilege drop can be undone (setuid(0) succeeded)")
	}
	return "", nil
}

// Chroot changes the root directory to dir and the working directory to
// the new root, so no path outside the jail stays reachable through ".".
func Chroot(dir string) error {
	if err := syscall.Chroot(dir); err != nil {
		return fmt.Errorf("chroot %s: %w", dir, err)
	}
	if err := os.Chdir("/"); err != nil {
		return fmt.Errorf("chroot %s: chdir /: %w", dir, bare(err))
	}
	return nil
}

// ParseUmask parses an octal umask such as 022 or 0077.
func ParseUmask(s string) (int, error) {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o777 {
		return 0, fmt.Errorf("invalid value %q for --umask: not an octal mask from 0 to 0777", s)
	}
	return int(n), nil
}
