// Command twistd runs compiled-in network plugins as Unix daemons.
//
// It is built as any program of your own would be (see package twistd):
// the stock plugins through one import, then Main.
package main

import (
	"os"

	"github.com/twistd-go/twistd"
	_ "github.com/twistd-go/twistd/plugins/standard"
)

func main() {
	os.Exit(twistd.Main())
}
