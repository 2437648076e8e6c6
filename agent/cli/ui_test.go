package cli

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestUIServesOnLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:12000": true, "127.0.0.1:0": true, "[::1]:12000": true, "localhost:12000": true,
		"0.0.0.0:12000": false, ":12000": false, "192.0.2.1:12000": false, "[::]:12000": false,
		"example.com:12000": false, "127.0.0.1": false,
	} {
		err := loopbackAddr(addr)
		assert.Equal(t, ok, err == nil, "%s: %v", addr, err)
	}
	cmd := NewCommand()
	cmd.SetArgs([]string{"ui", "--addr", "0.0.0.0:0"})
	err := cmd.Execute()
	assert.ErrorContains(t, err, "loopback address only")
}
