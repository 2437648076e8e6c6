package procsensor

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/sluicenet/sluice/datapath/bpfgen"
)

// Offsets in the C event structs (bpf/lib/process.h), checked against the
// bpf2go mirrors in decode_test.go. Decoding by hand keeps the 8 KiB
// variable part of an exec event out of a reflective decoder.
const (
	hdrSize      = 32
	offType      = 0
	offFlags     = 1
	offPID       = 4
	offKtime     = 8
	offKey       = 16 // tgid u32, pad, start_time u64
	offParent    = 32 // exec and fork
	offUID       = 48
	offPIDNS     = 64
	offCwdLen    = 76
	offCapEff    = 88
	offCgroup    = 104
	execDataOff  = 112
	offExitCode  = 32
	offProto     = 32
	offSport     = 36
	offSaddr     = 44
	offNetNS     = 56
	offCookie    = 64
	exitSize     = 40
	forkSize     = 48
	connectSize  = 72
	offPolicyID  = 32 // enforce: policy_id u32, slot, action, signal, enforced u8
	offEnfNetNS  = 40
	offEnfFnLen  = 44
	offEnfFn     = 48
	enforceSize  = 304
	cwdMax       = 1024 + 256
	filenameMax  = 512
	argsMaxBytes = 2048
)

var le = binary.LittleEndian

func timeNs(ns uint64) time.Duration { return time.Duration(ns) }

func key(b []byte) Key {
	return Key{TGID: le.Uint32(b), StartTime: le.Uint64(b[8:])}
}

// decode decodes one ring buffer record; boot is the wall-clock time of
// CLOCK_MONOTONIC 0.
func decode(b []byte, boot time.Time) (Event, error) {
	if len(b) < hdrSize {
		return Event{}, fmt.Errorf("process event of %d bytes", len(b))
	}
	t := boot.Add(timeNs(le.Uint64(b[offKtime:])))
	switch bpfgen.ProcessProcessEventType(b[offType]) {
	case bpfgen.ProcessProcessEventTypePROCESS_EXEC:
		e, err := decodeExec(b)
		if err != nil {
			return Event{}, err
		}
		e.Time = t
		return Event{Exec: e}, nil
	case bpfgen.ProcessProcessEventTypePROCESS_EXIT:
		if len(b) < exitSize {
			break
		}
		code := le.Uint32(b[offExitCode:])
		return Event{Exit: &Exit{Time: t, Key: key(b[offKey:]), Status: code >> 8 & 0xff, Signal: code & 0x7f}}, nil
	case bpfgen.ProcessProcessEventTypePROCESS_FORK:
		if len(b) < forkSize {
			break
		}
		return Event{Fork: &Fork{Time: t, Key: key(b[offKey:]), Parent: key(b[offParent:])}}, nil
	case bpfgen.ProcessProcessEventTypePROCESS_CONNECT:
		if len(b) < connectSize {
			break
		}
		return Event{Connect: decodeConnect(b, t)}, nil
	case bpfgen.ProcessProcessEventTypePROCESS_ENFORCE:
		if len(b) < enforceSize {
			break
		}
		return Event{Enforcement: decodeEnforcement(b, t)}, nil
	case bpfgen.ProcessProcessEventTypePROCESS_CONNECT_RULE:
		return decodeConnectRule(b, t)
	case bpfgen.ProcessProcessEventTypePROCESS_SYSCALL:
		if len(b) < syscallSize {
			break
		}
		return Event{Syscall: decodeSyscall(b, t)}, nil
	default:
		return Event{}, fmt.Errorf("process event of unknown type %d", b[offType])
	}
	return Event{}, fmt.Errorf("process event type %d of %d bytes", b[offType], len(b))
}

// decodeExecFixed decodes the fixed part of an exec event (also what the
// task iterator writes).
func decodeExecFixed(b []byte) *Exec {
	return &Exec{
		Key:          key(b[offKey:]),
		Parent:       key(b[offParent:]),
		PID:          le.Uint32(b[offPID:]),
		UID:          le.Uint32(b[offUID:]),
		EUID:         le.Uint32(b[offUID+4:]),
		GID:          le.Uint32(b[offUID+8:]),
		AUID:         le.Uint32(b[offUID+12:]),
		CapEffective: le.Uint64(b[offCapEff:]),
		CapPermitted: le.Uint64(b[offCapEff+8:]),
		NS:           Namespaces{PID: le.Uint32(b[offPIDNS:]), Mnt: le.Uint32(b[offPIDNS+4:]), Net: le.Uint32(b[offPIDNS+8:])},
		CgroupID:     le.Uint64(b[offCgroup:]),
	}
}

func decodeExec(b []byte) (*Exec, error) {
	if len(b) < execDataOff {
		return nil, fmt.Errorf("exec event of %d bytes", len(b))
	}
	e := decodeExecFixed(b)
	flags := bpfgen.ProcessProcessFlag(b[offFlags])
	e.FilenameTruncated = flags&bpfgen.ProcessProcessFlagPROCESS_FILENAME_TRUNC != 0
	e.ArgsTruncated = flags&bpfgen.ProcessProcessFlagPROCESS_ARGS_TRUNC != 0
	e.CwdTruncated = flags&bpfgen.ProcessProcessFlagPROCESS_CWD_TRUNC != 0
	cwdLen := int(le.Uint16(b[offCwdLen:]))
	fnLen := int(le.Uint16(b[offCwdLen+2:]))
	argsLen := int(le.Uint16(b[offCwdLen+4:]))
	data := b[execDataOff:]
	if cwdLen > cwdMax || fnLen > filenameMax || argsLen > argsMaxBytes || cwdLen+fnLen+argsLen > len(data) {
		return nil, fmt.Errorf("exec event lengths %d/%d/%d beyond its %d bytes", cwdLen, fnLen, argsLen, len(data))
	}
	e.Cwd = joinCwd(data[:cwdLen])
	e.Filename = cstring(data[cwdLen : cwdLen+fnLen])
	e.Args = splitArgs(data[cwdLen+fnLen : cwdLen+fnLen+argsLen])
	return e, nil
}

// joinCwd turns the NUL-terminated components the kernel wrote leaf first
// into a path.
func joinCwd(b []byte) string {
	parts := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	if len(b) == 0 {
		return "/"
	}
	var sb strings.Builder
	for i := len(parts) - 1; i >= 0; i-- {
		sb.WriteByte('/')
		sb.WriteString(parts[i])
	}
	return sb.String()
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// splitArgs splits argv as laid out in memory (each argument
// NUL-terminated; a cut one lacks its NUL).
func splitArgs(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

func addrPort(addr, port []byte) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(addr[:4])), binary.BigEndian.Uint16(port))
}

func decodeConnect(b []byte, t time.Time) *Connect {
	c := &Connect{
		Time:   t,
		Key:    key(b[offKey:]),
		Proto:  b[offProto],
		Src:    addrPort(b[offSaddr:], b[offSport:]),
		Dst:    addrPort(b[offSaddr+4:], b[offSport+2:]),
		NetNS:  le.Uint32(b[offNetNS:]),
		Cookie: le.Uint64(b[offCookie:]),
		Failed: bpfgen.ProcessProcessFlag(b[offFlags])&bpfgen.ProcessProcessFlagPROCESS_CONNECT_FAILED != 0,
	}
	if orig := addrPort(b[offSaddr+8:], b[offSport+4:]); orig.Port() != 0 {
		c.OrigDst = orig
	}
	return c
}

// ruleAction decodes what every rule event has after its header: policy
// id, slot, action, signal, and whether the signal was sent.
func ruleAction(b []byte) (policy uint32, slot uint8, action ExecAction, signal uint8, enforced bool) {
	return le.Uint32(b[offPolicyID:]), b[offPolicyID+4], ExecAction(b[offPolicyID+5]), b[offPolicyID+6], b[offPolicyID+7] != 0
}

func decodeEnforcement(b []byte, t time.Time) *Enforcement {
	n := min(int(le.Uint16(b[offEnfFnLen:])), enforceSize-offEnfFn)
	e := &Enforcement{
		Time:              t,
		Key:               key(b[offKey:]),
		PID:               le.Uint32(b[offPID:]),
		NetNS:             le.Uint32(b[offEnfNetNS:]),
		Filename:          cstring(b[offEnfFn : offEnfFn+n]),
		FilenameTruncated: bpfgen.ProcessProcessFlag(b[offFlags])&bpfgen.ProcessProcessFlagPROCESS_FILENAME_TRUNC != 0,
	}
	e.PolicyID, e.Slot, e.Action, e.Signal, e.Enforced = ruleAction(b)
	return e
}
