// Command echo is the e2e test workload (the sluice.local/echo image hack/k8s/build.sh builds): a server that names itself in every reply, and a client for `kubectl exec`.
//
// Server (default): TCP :9000 answers each line with "<name> <line>", UDP :9001 answers each datagram with
// "<name> <payload>", HTTP :8080 answers "hello from <name> (you are <addr>)" and /healthz "ok". The name is $POD_NAME
// or the hostname (the pod name in Kubernetes).
//
// `echo idle` only waits (a pod to exec the client in, e.g. on the host network).
//
// Client: `echo tcp|udp|http ADDR [MSG]` sends one request and prints the reply; `echo stream ADDR` keeps one TCP
// connection and relays stdin lines to it, printing each reply (a long-lived connection driven by the test).
// `echo crr ADDR` connects, sends one line, reads the reply and closes, again and again until stdin closes, then prints
// one JSON line: attempts, failures (with the first error) and replies per backend name (a connection-rate load whose
// every reply is checked).
// `echo lookup NAME` resolves NAME through the pod's resolver configuration (the cluster DNS) and prints its addresses.
// `echo https ADDR [PATH]` GETs https://ADDR/PATH (default /version) verifying the server against the pod's
// service-account CA with its token, and prints "HTTP <code>" and the body (the kubernetes Service test).
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/sluicenet/sluice/test/echoserver"
)

func main() {
	var err error
	if len(os.Args) == 2 && os.Args[1] == "idle" {
		// A client-only pod (hostNetwork: the server's ports would be the node's).
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
		<-stop
		return
	}
	if len(os.Args) > 2 {
		err = client(os.Args[1], os.Args[2], strings.Join(os.Args[3:], " "))
	} else {
		err = serve()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}

func name() string {
	if n := os.Getenv("POD_NAME"); n != "" {
		return n
	}
	h, _ := os.Hostname()
	return h
}

func serve() error {
	me := name()
	ln, err := net.Listen("tcp", ":9000")
	if err != nil {
		return err
	}
	go echoserver.Serve(ln, echoserver.Lines(me))
	pc, err := net.ListenPacket("udp", ":9001")
	if err != nil {
		return err
	}
	go echoserver.ServeUDP(pc, func(p []byte) []byte { return []byte(me + " " + string(p)) })
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s (you are %s)\n", me, r.RemoteAddr)
	})
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	return http.ListenAndServe(":8080", nil)
}

func client(mode, addr, msg string) error {
	if msg == "" {
		msg = "ping"
	}
	switch mode {
	case "tcp":
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintln(c, msg); err != nil {
			return err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		fmt.Print(line)
	case "lookup":
		// addr is a name, resolved as the pod's /etc/resolv.conf says (search list, ndots: the cluster DNS)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ips, err := net.DefaultResolver.LookupHost(ctx, addr)
		if err != nil {
			return err
		}
		sort.Strings(ips)
		fmt.Println(strings.Join(ips, " "))
	case "udp":
		c, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		for try := 0; try < 5; try++ {
			if _, err := c.Write([]byte(msg)); err != nil {
				return err
			}
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			n, err := c.Read(buf)
			if err == nil {
				fmt.Println(string(buf[:n]))
				return nil
			}
		}
		return fmt.Errorf("no UDP reply from %s", addr)
	case "http":
		cl := http.Client{Timeout: 5 * time.Second}
		r, err := cl.Get("http://" + addr + "/")
		if err != nil {
			return err
		}
		defer r.Body.Close()
		_, err = io.Copy(os.Stdout, r.Body)
		return err
	case "https":
		return httpsGet(addr, msg)
	case "crr":
		return crrLoop(addr)
	case "stream":
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		fmt.Println("connected", c.LocalAddr())
		in, rd := bufio.NewScanner(os.Stdin), bufio.NewReader(c)
		for in.Scan() {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := fmt.Fprintln(c, in.Text()); err != nil {
				return err
			}
			line, err := rd.ReadString('\n')
			if err != nil {
				return err
			}
			fmt.Print(line)
		}
	default:
		return fmt.Errorf("unknown mode %q (tcp, udp, http, https, stream, crr)", mode)
	}
	return nil
}

// crrResult is what `echo crr` prints when stdin closes.
type crrResult struct {
	Attempts   int            `json:"attempts"`
	Failed     int            `json:"failed"`
	FirstError string         `json:"first_error,omitempty"`
	Backends   map[string]int `json:"backends"`
}

// crrLoop runs connect-request-reply-close transactions against addr until
// stdin reaches EOF and prints a crrResult. A transaction fails on a dial,
// write or read error or a reply that does not echo its line.
func crrLoop(addr string) error {
	stop := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
	res := crrResult{Backends: map[string]int{}}
	fail := func(err error) {
		res.Failed++
		if res.FirstError == "" {
			res.FirstError = fmt.Sprintf("attempt %d at %s: %v", res.Attempts, time.Now().Format(time.RFC3339Nano), err)
		}
	}
	for {
		select {
		case <-stop:
			return json.NewEncoder(os.Stdout).Encode(res)
		default:
		}
		res.Attempts++
		msg := fmt.Sprintf("crr-%d", res.Attempts)
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			fail(err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		_, err = fmt.Fprintln(c, msg)
		var line string
		if err == nil {
			line, err = bufio.NewReader(c).ReadString('\n')
		}
		c.Close()
		name, got, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch {
		case err != nil:
			fail(err)
		case got != msg:
			fail(fmt.Errorf("reply %q to %q", line, msg))
		default:
			res.Backends[name]++
		}
	}
}

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// httpsGet asks the API server (through whatever addr leads to it) with the pod's service account.
func httpsGet(addr, path string) error {
	if !strings.HasPrefix(path, "/") {
		path = "/version"
	}
	ca, err := os.ReadFile(saDir + "/ca.crt")
	if err != nil {
		return err
	}
	token, err := os.ReadFile(saDir + "/token")
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return fmt.Errorf("no certificate in %s/ca.crt", saDir)
	}
	cl := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "kubernetes.default.svc"},
	}}
	req, err := http.NewRequest(http.MethodGet, "https://"+addr+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	r, err := cl.Do(req)
	if err != nil {
		return err
	}
	defer r.Body.Close()
	fmt.Println("HTTP", r.StatusCode)
	_, err = io.Copy(os.Stdout, r.Body)
	return err
}
