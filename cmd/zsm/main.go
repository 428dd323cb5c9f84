// Command zsm is the command-line client of zsm (docs/cli.md).
package main

import (
	"os"

	"zsm.dev/zsm/cli"
)

func main() { os.Exit(cli.Main()) }
