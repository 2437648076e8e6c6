package procsensor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/pin"
)

// Map names the sensor pins under <root>/maps; bpf/sock.c shares them by
// these names when the socket LB reports UDP connections
// (datapath.Options.ProcessEvents).
const (
	EventsMap = bpfgen.ProcessMapSluiceProcessEventsV1
	LostMap   = bpfgen.ProcessMapSluiceProcessLostV1
)

// Hook names as Hooks reports them.
const (
	HookExec    = "tp_btf/sched_process_exec"
	HookExit    = "tp_btf/sched_process_exit"
	HookFork    = "tp_btf/sched_process_fork"
	HookConnect = "tp_btf/inet_sock_set_state"
	HookIter    = "iter/task"
	// The syscall hooks run only while some syscall rule of theirs exists
	// (SetSyscallRules).
	HookSysEnter = "tp_btf/sys_enter"
	HookSysExit  = "tp_btf/sys_exit"
)

// Options are the sensor's load-time choices.
type Options struct {
	// NoConnect leaves the TCP connect tracepoint out.
	NoConnect bool
	// Stats turns on the kernel's BPF run-time statistics while the sensor
	// is loaded (ProgramStats reports zeros without them). They cost a
	// little on every BPF program of the machine.
	Stats bool
}

// Sensor is the loaded process sensor. Its maps are pinned under the
// datapath root, its tracepoint links under links/tracing (pins.go): they
// stay attached when the Sensor is closed or its process exits, so tracing
// policies stay enforced while the agent restarts; the next Load takes
// over, Unpin stops them.
type Sensor struct {
	root  string
	maps  map[string]*ebpf.Map
	progs map[string]*ebpf.Program // by hook
	links map[string]link.Link     // by hook
	hooks []string
	stats io.Closer
	boot  time.Time // wall-clock time of CLOCK_MONOTONIC 0
	exec  execState // SetExecRules
	sys   sysState  // SetSyscallRules
	class classState
	// sysLinks are the attached syscall hooks (by hook), sysErr why a
	// syscall program did not load.
	sysLinks map[string]link.Link
	sysErr   map[string]error
	// recreated are the pinned rule maps Load found with another layout.
	recreated []string
}

// hookProgs are the programs by hook, in attach order; the first program
// of a hook that loads is used (exit: the group_dead tracepoint argument of
// 6.16+, else signal->live).
var hookProgs = []struct {
	hook     string
	progs    []string
	required bool
}{
	{HookExec, []string{bpfgen.ProcessProgTraceExec}, true},
	{HookExit, []string{bpfgen.ProcessProgTraceExit, bpfgen.ProcessProgTraceExitLive}, true},
	{HookFork, []string{bpfgen.ProcessProgTraceFork}, true},
	{HookConnect, []string{bpfgen.ProcessProgTraceTcpState}, false},
	{HookIter, []string{bpfgen.ProcessProgIterTasks}, false},
}

// Load loads the sensor's maps under the bpffs root (pinned by name, shared
// with bpf/sock.c; the rule maps an earlier sensor pinned are reused with
// their rules), then each program on its own, so a hook this kernel refuses
// is left out instead of failing the whole sensor: exec, exit and fork are
// required, the TCP connect tracepoint and the task iterator are not. Hooks
// reports what runs. The links are pinned last, each replacing the pin of
// an earlier sensor's link on its hook once the new one is attached (both
// run for that moment). On error nothing new stays attached and the
// earlier sensor's links keep running.
func Load(root string, opts Options) (s *Sensor, err error) {
	if root == "" {
		return nil, errors.New("load process sensor: no bpffs root")
	}
	if err := pin.EnsureRoot(root, false); err != nil {
		return nil, err
	}
	spec, err := bpfgen.LoadProcess()
	if err != nil {
		return nil, err
	}
	privateDatapathMaps(spec, pin.MapsDir(root))
	recreated, err := pinRuleMaps(spec, pin.MapsDir(root))
	if err != nil {
		return nil, err
	}
	s = &Sensor{root: root, progs: map[string]*ebpf.Program{}, links: map[string]link.Link{}, boot: bootTime(),
		recreated: recreated}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if opts.Stats {
		if s.stats, err = ebpf.EnableStats(unix.BPF_STATS_RUN_TIME); err != nil {
			return nil, fmt.Errorf("enable BPF stats: %w", err)
		}
	}
	mspec := spec.Copy()
	mspec.Programs = nil
	coll, err := ebpf.NewCollectionWithOptions(mspec, ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: pin.MapsDir(root)}})
	if err != nil {
		return nil, fmt.Errorf("create process sensor maps: %w", err)
	}
	s.maps = coll.Maps
	for _, h := range hookProgs {
		if h.hook == HookConnect && opts.NoConnect {
			continue
		}
		prog, err := s.loadHook(spec, h.progs)
		if err != nil {
			if h.required {
				return nil, fmt.Errorf("load %s: %w", h.hook, err)
			}
			continue
		}
		if err := s.attach(h.hook, prog); err != nil {
			prog.Close()
			if h.required {
				return nil, err
			}
			continue
		}
		s.progs[h.hook] = prog
		s.hooks = append(s.hooks, h.hook)
	}
	s.loadSyscallHooks(spec)
	if err := s.adoptSyscallLinks(); err != nil {
		return nil, err
	}
	if err := s.pinLinks(); err != nil {
		return nil, err
	}
	return s, nil
}

// loadHook loads the first of names that the kernel accepts.
func (s *Sensor) loadHook(spec *ebpf.CollectionSpec, names []string) (*ebpf.Program, error) {
	var errs []error
	for _, name := range names {
		pspec := spec.Copy()
		pspec.Programs = map[string]*ebpf.ProgramSpec{name: spec.Programs[name]}
		coll, err := ebpf.NewCollectionWithOptions(pspec, ebpf.CollectionOptions{MapReplacements: s.maps})
		if err != nil {
			var ve *ebpf.VerifierError
			if errors.As(err, &ve) {
				err = fmt.Errorf("%+v", ve)
			}
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		prog := coll.DetachProgram(name)
		coll.Close()
		return prog, nil
	}
	return nil, errors.Join(errs...)
}

func (s *Sensor) attach(hook string, prog *ebpf.Program) error {
	if hook == HookIter {
		return nil // attached per Running call
	}
	l, err := link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ebpf.AttachTraceRawTp})
	if err != nil {
		return fmt.Errorf("attach %s: %w", hook, err)
	}
	s.links[hook] = l
	return nil
}

// privateDatapathMaps gives the sensor a private one-entry copy of each
// socket-LB map (sluice_sock_*) the datapath has not pinned under mapsDir:
// the sensor only reads them (the socket LB's reverse translation, for
// OrigDst) and must not pin a full-size map the datapath did not create.
func privateDatapathMaps(spec *ebpf.CollectionSpec, mapsDir string) {
	for name, m := range spec.Maps {
		if !strings.HasPrefix(name, "sluice_sock") {
			continue
		}
		if _, err := os.Stat(filepath.Join(mapsDir, name)); err == nil {
			continue
		}
		m.Pinning = ebpf.PinNone
		m.MaxEntries = 1
	}
}

// bootTime returns the wall-clock time at which CLOCK_MONOTONIC was 0.
func bootTime() time.Time {
	var ts unix.Timespec
	now := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return time.Time{}
	}
	return now.Add(-time.Duration(ts.Nano()))
}

// Hooks returns the hooks the sensor runs on, for `sluice status`.
func (s *Sensor) Hooks() []string {
	out := append([]string(nil), s.hooks...)
	for _, h := range []string{HookSysEnter, HookSysExit} {
		if s.sysLinks[h] != nil {
			out = append(out, h)
		}
	}
	return out
}

// Lost returns how many events the kernel could not write into the ring
// buffer (it was full), summed over CPUs, since the maps were created.
func (s *Sensor) Lost() (uint64, error) {
	var per []uint64
	if err := s.maps[LostMap].Lookup(uint32(0), &per); err != nil {
		return 0, fmt.Errorf("read %s: %w", LostMap, err)
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n, nil
}

// Stats are a program's kernel run-time statistics (Options.Stats).
type Stats struct {
	RunCount uint64
	RunTime  time.Duration
}

// PerRun returns the mean run time, 0 without runs.
func (st Stats) PerRun() time.Duration {
	if st.RunCount == 0 {
		return 0
	}
	return st.RunTime / time.Duration(st.RunCount)
}

// ProgramStats returns the run-time statistics of each program by hook.
func (s *Sensor) ProgramStats() (map[string]Stats, error) {
	out := make(map[string]Stats, len(s.progs))
	for hook, p := range s.progs {
		st, err := p.Stats()
		if err != nil {
			return nil, fmt.Errorf("program stats of %s: %w", hook, err)
		}
		out[hook] = Stats{RunCount: st.RunCount, RunTime: st.Runtime}
	}
	return out, nil
}

// Close releases the sensor's handles. Its pinned links stay attached and
// its pinned maps keep their rules (the next Load takes over; Unpin, or
// datapath.Unpin, stops them); a link Load attached but had not pinned yet
// (Load failed) detaches.
func (s *Sensor) Close() error {
	var errs []error
	for _, l := range s.links {
		errs = append(errs, l.Close())
	}
	s.links = nil
	for _, l := range s.sysLinks {
		errs = append(errs, l.Close())
	}
	s.sysLinks = nil
	for _, p := range s.progs {
		errs = append(errs, p.Close())
	}
	s.progs = nil
	for _, m := range s.maps {
		errs = append(errs, m.Close())
	}
	s.maps = nil
	if s.stats != nil {
		errs = append(errs, s.stats.Close())
		s.stats = nil
	}
	return errors.Join(errs...)
}

// Maps returns the sensor's maps by name (for their usage in `sluice
// status`: datapath.CountMaps).
func (s *Sensor) Maps() map[string]*ebpf.Map {
	out := make(map[string]*ebpf.Map, len(s.maps))
	for name, m := range s.maps {
		out[name] = m
	}
	return out
}
