package procsensor

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

// The heads of string filters: an Equal value's NUL counts, Prefix values
// are cut at 8 bytes, too many distinct heads are cut shorter until at
// most MaxArgInts remain, and Postfix or an empty Prefix have none.
func TestSysHeads(t *testing.T) {
	h := func(s string, n uint8) strHead { return headOf(s, int(n)) }
	assert.Equal(t, []strHead{{bytes: 0x636261, n: 4}}, sysHeads(ArgFilter{Op: ArgEqual, Strings: []string{"abc"}}))
	assert.Equal(t, []strHead{h("abcdefg\x00", 8)}, sysHeads(ArgFilter{Op: ArgNotEqual, Strings: []string{"abcdefg"}}))
	assert.Equal(t, []strHead{h("abcdefgh", 8)}, sysHeads(ArgFilter{Op: ArgEqual, Strings: []string{"abcdefgh"}}))
	assert.Equal(t, []strHead{h("\x00", 1)}, sysHeads(ArgFilter{Op: ArgEqual, Strings: []string{""}}))
	assert.Equal(t, []strHead{h("ab", 2), h("abcdefgh", 8)},
		sysHeads(ArgFilter{Op: ArgPrefix, Strings: []string{"ab", "abcdefghij", "abcdefgh"}}))
	assert.Nil(t, sysHeads(ArgFilter{Op: ArgPrefix, Strings: []string{"/etc/", ""}}))
	assert.Nil(t, sysHeads(ArgFilter{Op: ArgPostfix, Strings: []string{"/shadow"}}))

	var many []string
	for i := 0; i < 20; i++ {
		many = append(many, fmt.Sprintf("/etc/%c%02d", 'a'+i%7, i))
	}
	heads := sysHeads(ArgFilter{Op: ArgNotPrefix, Strings: append(many, "/e")})
	assert.Len(t, sysHeads(ArgFilter{Op: ArgNotPrefix, Strings: append(many, "/e", "/x")}), 3, "9 heads: cut to 5 bytes")
	assert.Len(t, heads, 8) // "/etc/a" .. "/etc/g" (6 bytes) and "/e"
	assert.Contains(t, heads, h("/etc/c", 6))
	assert.Contains(t, heads, h("/e", 2))
	for i := 0; i < 300; i++ {
		many = append(many, fmt.Sprintf("%c%c", 'a'+i%26, 'a'+i/26))
	}
	assert.Nil(t, sysHeads(ArgFilter{Op: ArgPrefix, Strings: many}), "more than 8 distinct first bytes")
}

// The kernel slot carries the heads of string filters and the integers of
// integer filters.
func TestSysSlotHeads(t *testing.T) {
	path := Value{Source: SourceArg, Index: 1, String: true}
	v := sysSlotValue(SyscallRule{Args: []ArgFilter{
		{Value: path, Op: ArgPrefix, Strings: []string{"/etc/", "/root/.ssh/"}},
		{Value: Value{Source: SourceArg, Index: 2}, Op: ArgMask, Ints: []uint64{3}},
	}})
	assert.Equal(t, uint8(2), v.Args[0].Nints)
	assert.Equal(t, [8]uint64{headOf("/etc/", 8).bytes, headOf("/root/.s", 8).bytes}, v.Args[0].Ints)
	assert.Equal(t, [8]uint8{5, 8}, v.Args[0].Hlen)
	assert.Equal(t, uint8(1), v.Args[1].Nints)
	assert.Equal(t, uint64(3), v.Args[1].Ints[0])
}
