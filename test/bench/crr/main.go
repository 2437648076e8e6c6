// Command crr is a TCP_CRR load tool with netperf's semantics: each
// transaction connects, writes a 1-byte request, reads a 1-byte response and
// closes. It has three subcommands:
//
//	crr serve --listen ip:port --name N [--announce] [--udp]
//	crr run   --target ip:port[,ip:port] --workers N --duration D [--warmup D] [--proto tcp_crr|udp_rr]
//	crr ask   --target ip:port [--udp]
//
// serve answers every 1-byte request with 1 byte, except the request '?',
// which it answers with "<name>\n"; with --announce it first writes
// "<name>\n" on every connection. Like netserver it then waits for the
// client to close before closing, so TIME_WAIT stays on the client. With
// --udp it answers UDP datagrams on the same address alike (UDP_RR; '?' gets
// the name), and run --proto udp_rr drives netperf's UDP_RR against it.
// run prints one JSON object (see Result). ask prints the name the server
// answered with: proof that a backend, not just a handshake, answered (with
// --udp, the reply to one datagram).
package main

import (
	"fmt"
	"os"
)

func usage() {
	fmt.Fprintln(os.Stderr, `usage:
  crr serve --listen ip:port --name N [--announce] [--udp]
  crr run   --target ip:port[,ip:port...] --workers N --duration D [--warmup D] [--timeout D] [--proto tcp_crr|udp_rr]
  crr ask   --target ip:port [--timeout D] [--udp]`)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serveMain(os.Args[2:])
	case "run":
		err = runMain(os.Args[2:])
	case "ask":
		err = askMain(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "crr %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
