package tcpcrr

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/test/bench/stats"
)

// Options of a load run.
type Options struct {
	// Targets are the servers; Pick says how a transaction chooses one.
	Targets  []netip.AddrPort
	Pick     Pick
	Workers  int
	Warmup   time.Duration // load without measuring, before Duration
	Duration time.Duration
	// Timeout bounds connect and read of one transaction (default 2s).
	Timeout time.Duration
	// Proto is the transaction: TCPCRR (the default when empty) or UDPRR.
	Proto Proto
}

// Proto is a kind of transaction.
type Proto string

const (
	// TCPCRR is netperf's TCP_CRR: connect, 1-byte request, 1-byte
	// response, close.
	TCPCRR Proto = "tcp_crr"
	// UDPRR is netperf's UDP_RR: a 1-byte datagram and its 1-byte answer,
	// on one connected socket per worker and target.
	UDPRR Proto = "udp_rr"
)

// Pick is how transactions choose among several targets.
type Pick string

const (
	// PickWorker pins worker w to target w mod len(targets): a perfectly
	// even, static split of the workers over the servers.
	PickWorker Pick = "worker"
	// PickRandom draws the target of every transaction at random: the
	// distribution a service's load balancer gives, without a service.
	PickRandom Pick = "random"
)

// Result is what `crr run` prints as JSON.
type Result struct {
	Proto        Proto    `json:"proto"`
	Targets      []string `json:"targets"`
	Pick         Pick     `json:"pick,omitempty"`
	Workers      int      `json:"workers"`
	DurationSec  float64  `json:"duration_s"`
	Transactions int64    `json:"transactions"`
	TPS          float64  `json:"tps"`
	P50Micros    float64  `json:"p50_us"`
	P99Micros    float64  `json:"p99_us"`
	Errors       int64    `json:"errors"`
	FirstError   string   `json:"first_error,omitempty"`
}

// Run drives the load: Workers goroutines, each doing transactions (o.Proto)
// back to back with blocking sockets until Warmup+Duration has passed. Only
// transactions that start after the warm-up are counted. It is bounded: a
// transaction can outlast the end by at most 2×Timeout.
func Run(o Options) (Result, error) {
	if len(o.Targets) == 0 || o.Workers < 1 || o.Duration <= 0 {
		return Result{}, errors.New("need targets, workers >= 1 and a duration > 0")
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	switch o.Proto {
	case "":
		o.Proto = TCPCRR
	case TCPCRR, UDPRR:
	default:
		return Result{}, fmt.Errorf("unknown transaction %q", o.Proto)
	}
	start := time.Now()
	measureFrom := start.Add(o.Warmup)
	end := measureFrom.Add(o.Duration)
	type acc struct {
		lat      []time.Duration
		errs     int64
		firstErr error
	}
	accs := make([]acc, o.Workers)
	var wg sync.WaitGroup
	for w := range o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := &accs[w]
			target := o.Targets[w%len(o.Targets)]
			do := func(target netip.AddrPort) error { return transact(target, o.Timeout) }
			if o.Proto == UDPRR {
				u := newUDPRR(o.Timeout)
				defer u.close()
				do = u.transact
			}
			for {
				if o.Pick == PickRandom {
					target = o.Targets[rand.IntN(len(o.Targets))]
				}
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				err := do(target)
				if t0.Before(measureFrom) {
					continue
				}
				if err != nil {
					a.errs++
					if a.firstErr == nil {
						a.firstErr = err
					}
					continue
				}
				a.lat = append(a.lat, time.Since(t0))
			}
		}()
	}
	wg.Wait()
	res := Result{Proto: o.Proto, Workers: o.Workers, DurationSec: o.Duration.Seconds()}
	res.Pick = o.Pick
	for _, t := range o.Targets {
		res.Targets = append(res.Targets, t.String())
	}
	var all []time.Duration
	for _, a := range accs {
		all = append(all, a.lat...)
		res.Errors += a.errs
		if a.firstErr != nil && res.FirstError == "" {
			res.FirstError = a.firstErr.Error()
		}
	}
	res.Transactions = int64(len(all))
	res.TPS = float64(res.Transactions) / o.Duration.Seconds()
	p := stats.Percentiles(all, 50, 99)
	res.P50Micros = float64(p[0]) / float64(time.Microsecond)
	res.P99Micros = float64(p[1]) / float64(time.Microsecond)
	return res, nil
}

// transact does one TCP_CRR transaction with a blocking socket: connect,
// write 1 byte, read 1 byte, close.
func transact(target netip.AddrPort, timeout time.Duration) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	// SO_SNDTIMEO bounds a blocking connect too.
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return fmt.Errorf("SO_SNDTIMEO: %w", err)
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("SO_RCVTIMEO: %w", err)
	}
	sa := &unix.SockaddrInet4{Port: int(target.Port()), Addr: target.Addr().As4()}
	if err := connect(fd, sa, timeout); err != nil {
		return fmt.Errorf("connect %s: %w", target, err)
	}
	if selfConnected(fd, target) {
		return fmt.Errorf("connect %s: the socket got the target's own address (no server there)", target)
	}
	b := []byte{'x'}
	if _, err := retryEINTR(func() (int, error) { return unix.Write(fd, b) }); err != nil {
		return fmt.Errorf("write to %s: %w", target, err)
	}
	n, err := retryEINTR(func() (int, error) { return unix.Read(fd, b) })
	switch {
	case err != nil:
		return fmt.Errorf("read from %s: %w", target, err)
	case n != 1:
		return fmt.Errorf("read from %s: connection closed without a response", target)
	}
	return nil
}

// selfConnected reports whether the connected socket fd is bound to
// target itself: a free target port in the ephemeral range can be the port
// the kernel just gave the socket, which is then connected to itself (TCP's
// simultaneous open) and "answers" its own request. That is no transaction.
func selfConnected(fd int, target netip.AddrPort) bool {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return false
	}
	in4, ok := sa.(*unix.SockaddrInet4)
	return ok && in4.Port == int(target.Port()) && in4.Addr == target.Addr().As4()
}

// connect is a blocking connect that survives signals: the Go runtime's
// preemption signal interrupts a connect with a timeout (EINTR), after which
// the handshake goes on in the background; wait for it with poll.
func connect(fd int, sa unix.Sockaddr, timeout time.Duration) error {
	err := unix.Connect(fd, sa)
	if !errors.Is(err, unix.EINTR) {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return unix.ETIMEDOUT
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(pfd, int(left.Milliseconds())+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("poll: %w", err)
		}
		if n == 0 {
			return unix.ETIMEDOUT
		}
		soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return fmt.Errorf("SO_ERROR: %w", err)
		}
		if soerr != 0 {
			return unix.Errno(soerr)
		}
		return nil
	}
}

// retryEINTR retries a read or write interrupted by a signal.
func retryEINTR(fn func() (int, error)) (int, error) {
	for {
		n, err := fn()
		if !errors.Is(err, unix.EINTR) {
			return n, err
		}
	}
}
