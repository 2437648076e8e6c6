// Package cli is the `sluice` command line: cobra commands over the agent's
// API client, and the table formatting of what they print.
package cli
