// Command sluice inspects a node's Sluice agent over its local API.
package main

import (
	"fmt"
	"os"

	"github.com/sluicenet/sluice/agent/cli"
)

func main() {
	if err := cli.NewCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}
