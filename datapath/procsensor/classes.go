package procsensor

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/cilium/ebpf"

	"github.com/sluicenet/sluice/datapath/bpfgen"
	"github.com/sluicenet/sluice/datapath/internal/maputil"
)

// Binary class maps (bpf/lib/process_class.h), pinned by name: bpf/sock.c's
// connect rules read the classes too.
const (
	classConfigMap = bpfgen.ProcessMapSluiceClassConfigV1
	classExactMap  = bpfgen.ProcessMapSluiceClassExactV1
	classPrefixMap = bpfgen.ProcessMapSluiceClassPrefixV1
	procClassMap   = bpfgen.ProcessMapSluiceProcClassV1
)

// classState is what SetBinaryClasses last wrote.
type classState struct {
	mu            sync.Mutex
	exact, prefix map[string]uint64
}

// SetBinaryClasses replaces the binary classes. New path entries are
// written first, then the configuration with a new generation (the kernel
// recomputes a process's classes from its stored paths at its next use),
// then stale entries are removed and the generation bumped once more, so no
// process keeps bits of a removed path. With classes, the processes running
// now that the kernel has no entry for are seeded from /proc/PID/exe (an
// entry the kernel wrote meanwhile wins); without, every entry is removed.
func (s *Sensor) SetBinaryClasses(classes []BinaryClass) error {
	byid := make(map[uint8]ExecRule, len(classes))
	var cfg bpfgen.ProcessClassConfig
	for _, c := range classes {
		if c.ID >= MaxBinaryClasses {
			return fmt.Errorf("binary class %d: beyond %d classes", c.ID, MaxBinaryClasses)
		}
		if _, dup := byid[c.ID]; dup {
			return fmt.Errorf("binary class %d: given twice", c.ID)
		}
		if err := checkPaths(c.Exact, c.Prefixes); err != nil {
			return fmt.Errorf("binary class %d: %w", c.ID, err)
		}
		byid[c.ID] = ExecRule{Exact: c.Exact, Prefixes: c.Prefixes}
		cfg.Active |= 1 << c.ID
		if c.FollowChildren {
			cfg.Follow |= 1 << c.ID
		}
	}
	st := &s.class
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.exact == nil {
		// The class maps are pinned: an earlier agent's entries are read
		// back, so those of classes gone meanwhile are removed.
		if err := s.adoptClasses(); err != nil {
			return err
		}
	}
	exact, prefix := execPathBits(byid)
	if err := s.putPaths(classExactMap, st.exact, exact, classExactKey); err != nil {
		return err
	}
	if err := s.putPaths(classPrefixMap, st.prefix, prefix, classPrefixKey); err != nil {
		return err
	}
	if len(exact) > 0 {
		cfg.Flags |= uint32(bpfgen.ProcessClassConfigFlagCLASS_HAS_EXACT)
	}
	if len(prefix) > 0 {
		cfg.Flags |= uint32(bpfgen.ProcessClassConfigFlagCLASS_HAS_PREFIX)
	}
	stale := len(st.exact) > len(exact) || len(st.prefix) > len(prefix)
	if err := s.bumpClasses(cfg); err != nil {
		return err
	}
	if err := s.deletePaths(classExactMap, st.exact, exact, classExactKey); err != nil {
		return err
	}
	if err := s.deletePaths(classPrefixMap, st.prefix, prefix, classPrefixKey); err != nil {
		return err
	}
	if stale {
		if err := s.bumpClasses(cfg); err != nil {
			return err
		}
	}
	if cfg.Active == 0 {
		return s.clearProcClasses(func(uint32) bool { return true })
	}
	return s.seedProcClasses()
}

func classExactKey(p string) any { return bpfgen.ProcessClassPath{Path: pathBytes(p)} }

func classPrefixKey(p string) any {
	return bpfgen.ProcessClassPrefixKey{Prefixlen: uint32(len(p)) * 8, Path: pathBytes(p)}
}

// bumpClasses writes cfg with the generation after the kernel's.
func (s *Sensor) bumpClasses(cfg bpfgen.ProcessClassConfig) error {
	var cur bpfgen.ProcessClassConfig
	if err := s.maps[classConfigMap].Lookup(uint32(0), &cur); err != nil {
		return fmt.Errorf("read %s: %w", classConfigMap, err)
	}
	cfg.Gen = cur.Gen + 1
	if err := s.maps[classConfigMap].Put(uint32(0), cfg); err != nil {
		return fmt.Errorf("write %s: %w", classConfigMap, err)
	}
	return nil
}

// clearProcClasses deletes the process entries whose tgid drop accepts.
func (s *Sensor) clearProcClasses(drop func(uint32) bool) error {
	m := s.maps[procClassMap]
	var (
		tgid  uint32
		v     []byte
		tgids []uint32
	)
	it := m.Iterate()
	for it.Next(&tgid, &v) {
		if drop(tgid) {
			tgids = append(tgids, tgid)
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read %s: %w", procClassMap, err)
	}
	for _, tgid := range tgids {
		if err := m.Delete(tgid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete %s %d: %w", procClassMap, tgid, err)
		}
	}
	return nil
}

// seedProcClasses removes the entries of processes that are gone (left by
// a sensor that ran before: the maps are pinned) and inserts one for each
// running process the kernel has none for, with the paths of /proc/PID/exe
// and of its parent's, and another generation so the kernel computes its
// bits at first use.
func (s *Sensor) seedProcClasses() error {
	if err := s.clearProcClasses(func(tgid uint32) bool {
		_, err := os.Stat("/proc/" + strconv.FormatUint(uint64(tgid), 10))
		return errors.Is(err, os.ErrNotExist)
	}); err != nil {
		return err
	}
	var cfg bpfgen.ProcessClassConfig
	if err := s.maps[classConfigMap].Lookup(uint32(0), &cfg); err != nil {
		return fmt.Errorf("read %s: %w", classConfigMap, err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return fmt.Errorf("seed binary classes: %w", err)
	}
	for _, d := range ents {
		tgid, err := strconv.ParseUint(d.Name(), 10, 32)
		if err != nil {
			continue
		}
		exe, err := os.Readlink("/proc/" + d.Name() + "/exe")
		if err != nil {
			continue // a kernel thread, or gone
		}
		e := bpfgen.ProcessProcClass{Gen: ^cfg.Gen, Path: pathBytes(truncPath(exe))}
		if pexe, err := os.Readlink("/proc/" + strconv.Itoa(procPPID(d.Name())) + "/exe"); err == nil {
			e.Ppath = pathBytes(truncPath(pexe))
		}
		err = s.maps[procClassMap].Update(uint32(tgid), e, ebpf.UpdateNoExist)
		if err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
			return fmt.Errorf("seed process %d: %w", tgid, maputil.UpdateError(procClassMap, err))
		}
	}
	return nil
}

// truncPath cuts p to what a 256-byte path field holds with its NUL.
func truncPath(p string) string {
	if len(p) > execPathMax-1 {
		return p[:execPathMax-1]
	}
	return p
}

// procPPID returns the parent pid of /proc/<pid>, 0 when unknown.
func procPPID(pid string) int {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(fields[1])
	return n
}

// ClassEntries counts the entries of the binary class maps.
type ClassEntries struct {
	Exact, Prefix, Procs int
}

// ClassEntries returns how many entries each binary class map holds (Procs:
// processes with classes), read from the kernel.
func (s *Sensor) ClassEntries() (ClassEntries, error) {
	var out ClassEntries
	return out, s.countEntries(map[string]*int{classExactMap: &out.Exact, classPrefixMap: &out.Prefix, procClassMap: &out.Procs})
}
