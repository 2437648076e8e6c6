package procsensor

import (
	"encoding/binary"
	"slices"
)

// headBytes is the most a string filter's head holds: what the kernel
// reads of a string before deciding whether it needs the whole string.
const headBytes = 8

// strHead is the first n bytes (n <= headBytes) of a string filter's
// values, as the kernel compares them: little-endian, the rest zero.
type strHead struct {
	bytes uint64
	n     uint8
}

// sysHeads returns the heads of string filter a (bpf/lib/syscall_types.h
// struct sys_arg): every value starts with one of them, an Equal value's
// NUL counted as its last byte, so a string that starts with none of them
// matches no value and the kernel skips reading it whole and the trie.
// Values whose first 8 bytes are more than MaxArgInts distinct heads are
// cut to shorter heads until they are not; nil when even one byte each is
// too many, and for Postfix (the end of a string decides).
func sysHeads(a ArgFilter) []strHead {
	var vals []string
	switch a.Op {
	case ArgEqual, ArgNotEqual:
		for _, v := range a.Strings {
			vals = append(vals, v+"\x00")
		}
	case ArgPrefix, ArgNotPrefix:
		vals = a.Strings
	default:
		return nil
	}
	for n := headBytes; n > 0; n-- {
		var heads []strHead
		for _, v := range vals {
			h := headOf(v, n)
			if h.n == 0 {
				return nil // an empty Prefix: every string starts with it
			}
			if !slices.Contains(heads, h) {
				heads = append(heads, h)
			}
		}
		if len(heads) <= MaxArgInts {
			return heads
		}
	}
	return nil
}

// headOf is the head of the first n bytes of v (fewer when v is shorter).
func headOf(v string, n int) strHead {
	var b [headBytes]byte
	m := copy(b[:], v[:min(n, len(v))])
	return strHead{bytes: binary.LittleEndian.Uint64(b[:]), n: uint8(m)}
}
