// Command qotd is twistd with its four stock plugins and one more, the
// quote of the day, built from a module of its own:
//
//	go build -o qotd . && ./qotd -n qotd --port 1717 --udp
package main

import (
	"os"

	"github.com/twistd-go/twistd"
	_ "github.com/twistd-go/twistd/plugins/standard"

	_ "example.com/qotd/quote"
)

func main() { os.Exit(twistd.Main()) }
