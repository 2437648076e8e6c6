package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sluicenet/sluice/test/bench/tcpcrr"
	"github.com/sluicenet/sluice/test/echoserver"
)

func serveMain(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", "", "address to listen on (ip:port)")
	name := fs.String("name", "", "name answered to '?' requests (and written first, with --announce)")
	announce := fs.Bool("announce", false, "write \"<name>\\n\" first on every connection")
	udp := fs.Bool("udp", false, "also answer UDP_RR (and '?' with the name) on the same address")
	fs.Parse(args)
	if *listen == "" || *name == "" {
		return errors.New("--listen and --name are required")
	}
	ln, err := net.Listen("tcp4", *listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *listen, err)
	}
	var pc net.PacketConn
	if *udp {
		if pc, err = net.ListenPacket("udp4", *listen); err != nil {
			ln.Close()
			return fmt.Errorf("listen udp %s: %w", *listen, err)
		}
		go tcpcrr.ServeUDP(pc, *name)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		ln.Close()
		if pc != nil {
			pc.Close()
		}
	}()
	// Readiness line for whoever started us.
	fmt.Printf("listening %s\n", ln.Addr())
	return tcpcrr.Serve(ln, *name, *announce)
}

func runMain(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	target := fs.String("target", "", "server address(es), ip:port[,ip:port...]")
	pick := fs.String("pick", string(tcpcrr.PickWorker), "with several targets: worker (worker w uses target w mod n) or random (per transaction)")
	workers := fs.Int("workers", 4, "parallel workers")
	duration := fs.Duration("duration", 5*time.Second, "measured duration")
	warmup := fs.Duration("warmup", 0, "load before the measured duration, not counted")
	timeout := fs.Duration("timeout", 2*time.Second, "connect and read timeout of one transaction")
	proto := fs.String("proto", string(tcpcrr.TCPCRR), "transaction: tcp_crr or udp_rr")
	fs.Parse(args)
	if *target == "" {
		return errors.New("--target is required")
	}
	o := tcpcrr.Options{Workers: *workers, Duration: *duration, Warmup: *warmup, Timeout: *timeout, Pick: tcpcrr.Pick(*pick), Proto: tcpcrr.Proto(*proto)}
	if o.Pick != tcpcrr.PickWorker && o.Pick != tcpcrr.PickRandom {
		return fmt.Errorf("--pick: %q is neither worker nor random", *pick)
	}
	for _, t := range strings.Split(*target, ",") {
		ap, err := netip.ParseAddrPort(strings.TrimSpace(t))
		if err != nil {
			return fmt.Errorf("--target: %w", err)
		}
		o.Targets = append(o.Targets, ap)
	}
	res, err := tcpcrr.Run(o)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

func askMain(args []string) error {
	fs := flag.NewFlagSet("ask", flag.ExitOnError)
	target := fs.String("target", "", "server address (ip:port)")
	timeout := fs.Duration("timeout", 2*time.Second, "timeout for the whole exchange")
	udp := fs.Bool("udp", false, "send one UDP datagram \"?\" and print the reply instead")
	fs.Parse(args)
	if *target == "" {
		return errors.New("--target is required")
	}
	ask := tcpcrr.Ask
	if *udp {
		ask = askUDP
	}
	name, err := ask(*target, *timeout)
	if err != nil {
		return err
	}
	fmt.Println(name)
	return nil
}

// askUDP sends "?" to target over UDP and returns the reply (the
// harness's UDP servers answer "<name>\n").
func askUDP(target string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("udp4", target, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	return echoserver.AskUDP(c, timeout)
}
