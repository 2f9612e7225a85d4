// Package passwd reads password files: one "name:bcrypt-hash" line per
// account, as `htpasswd -nbB NAME PASSWORD` prints them. ftp-lite's
// --password-file and chat's --users share it.
package passwd

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Users maps each name in a password file to its bcrypt hash.
type Users map[string][]byte

// Read reads the password file name; flag is the option that named it, for
// messages. Blank lines and lines starting with # are skipped. Anything
// that is not a bcrypt hash is refused, so a plain-text password never
// works.
func Read(flag, name string) (Users, error) {
	f, err := os.Open(name)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%s %s: %w", flag, name, err)
	}
	defer f.Close()
	users := Users{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		switch {
		case !ok || user == "":
			return nil, fmt.Errorf("%s %s line %d: want user:bcrypt-hash", flag, name, n)
		case users[user] != nil:
			return nil, fmt.Errorf("%s %s line %d: user %q given twice", flag, name, n, user)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("%s %s line %d: the password of %q is not a bcrypt hash (plain-text passwords are refused; make a line with: twistd ftp-lite passwd USER)", flag, name, n, user)
		}
		users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, name, err)
	}
	return users, nil
}

// MaxCost returns the highest bcrypt cost among the hashes, or
// bcrypt.MinCost if there are none: a check for an unknown name against a
// hash of that cost takes as long as one for a known name.
func (u Users) MaxCost() int {
	cost := bcrypt.MinCost
	for _, h := range u {
		if c, err := bcrypt.Cost(h); err == nil {
			cost = max(cost, c)
		}
	}
	return cost
}
