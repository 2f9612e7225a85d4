// Command twistd runs compiled-in network plugins as Unix daemons.
package main

import (
	"os"

	"github.com/twistd-go/twistd/internal/app"
	_ "github.com/twistd-go/twistd/internal/plugins/all"
)

func main() {
	os.Exit(app.Main(os.Args[1:], os.Stdout, os.Stderr))
}
