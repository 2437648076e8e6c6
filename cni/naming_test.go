package cni

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestHostVethName(t *testing.T) {
	tests := []struct{ containerID, ifName, want string }{
		// The name is "lxc" + the first 11 hex digits of sha256(containerID/ifName).
		{"abc", "eth0", "lxc" + sha256Prefix("abc/eth0")},
		{"abc", "net1", "lxc" + sha256Prefix("abc/net1")},
		{"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "eth0",
			"lxc" + sha256Prefix("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef/eth0")},
	}
	valid := regexp.MustCompile(`^lxc[0-9a-f]{11}$`)
	seen := map[string]bool{}
	for _, tt := range tests {
		got := HostVethName(tt.containerID, tt.ifName)
		assert.Equal(t, tt.want, got)
		assert.Regexp(t, valid, got)
		assert.LessOrEqual(t, len(got), 15, "IFNAMSIZ-1")
		assert.Equal(t, got, HostVethName(tt.containerID, tt.ifName), "deterministic")
		assert.False(t, seen[got], "distinct attachments get distinct names")
		seen[got] = true
	}
	assert.Equal(t, "lxc538f587a236", HostVethName("abc", "eth0")) // echo -n abc/eth0 | sha256sum
}

func sha256Prefix(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:11]
}
