package ftplite

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"

	"github.com/spf13/pflag"
	"golang.org/x/crypto/bcrypt"

	"github.com/twistd-go/twistd/plugin"
)

var passwdCommand = plugin.Command{
	Name:  "passwd",
	Args:  "USER",
	NArgs: 1,
	Short: "print a --password-file line for USER (bcrypt)",
	Long: `Prints "USER:HASH", a line for --password-file, with a bcrypt hash of a
password read from the terminal (twice, not echoed) or, when standard
input is not a terminal, from its first line. The password is never an
argument, so it does not show in ps or the shell's history.

  twistd ftp-lite passwd alice >> ftp-passwd
  printf '%s\n' "$PASSWORD" | twistd ftp-lite passwd alice >> ftp-passwd`,
	Options: passwdOptions,
}

// maxPassword is bcrypt's limit: it ignores nothing, it refuses more.
const maxPassword = 72

func passwdOptions(fs *pflag.FlagSet) plugin.RunCommand {
	cost := fs.Int("cost", bcrypt.DefaultCost, fmt.Sprintf("bcrypt cost, %d to %d: each step doubles the time of every login check", bcrypt.MinCost, bcrypt.MaxCost))
	return func(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
		user := args[0]
		if err := checkUserName(user); err != nil {
			return err
		}
		if *cost < bcrypt.MinCost || *cost > bcrypt.MaxCost {
			return fmt.Errorf("invalid value %d for --cost: want %d to %d", *cost, bcrypt.MinCost, bcrypt.MaxCost)
		}
		pw, err := readPassword(stdin, stderr, user)
		if err != nil {
			return err
		}
		hash, err := bcrypt.GenerateFromPassword(pw, *cost)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s:%s\n", user, hash)
		return err
	}
}

// checkUserName refuses names the password file cannot hold or that
// would read as something else there.
func checkUserName(user string) error {
	switch {
	case strings.ContainsRune(user, ':'):
		return fmt.Errorf("user name %q holds a colon, which ends the name in the password file", user)
	case strings.HasPrefix(user, "#"):
		return fmt.Errorf("user name %q starts with #, which makes the line a comment", user)
	case strings.IndexFunc(user, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return fmt.Errorf("user name %q holds white space or control characters", user)
	case user == "":
		return errors.New("empty user name")
	}
	return nil
}

// readPassword reads the password: from the terminal without echo when
// stdin is one, else the first line of stdin.
func readPassword(stdin io.Reader, prompt io.Writer, user string) ([]byte, error) {
	var pw []byte
	if f, ok := stdin.(*os.File); ok && isTerminal(f) {
		lines, err := readNoEcho(f, prompt, "Password for "+user+": ", "Again: ")
		if err != nil {
			return nil, err
		}
		if string(lines[0]) != string(lines[1]) {
			return nil, errors.New("the two passwords differ")
		}
		pw = lines[0]
	} else {
		line, err := bufio.NewReaderSize(stdin, 4096).ReadSlice('\n')
		if err != nil && err != io.EOF {
			if errors.Is(err, bufio.ErrBufferFull) {
				return nil, fmt.Errorf("password longer than %d bytes (bcrypt's limit)", maxPassword)
			}
			return nil, fmt.Errorf("reading the password from standard input: %w", err)
		}
		pw = []byte(strings.TrimRight(string(line), "\r\n"))
	}
	switch {
	case len(pw) == 0:
		return nil, errors.New("empty password")
	case len(pw) > maxPassword:
		return nil, fmt.Errorf("password longer than %d bytes (bcrypt's limit)", maxPassword)
	}
	return pw, nil
}
