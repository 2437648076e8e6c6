package datapath_test

import (
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/test/harness"
)

// A rule kept across replacements applies at every moment: while other
// slots come and go with prefixes nested in and around the kept rule's
// (rewriting the trie entry its destination resolves to), every connect to
// its destination is refused.
func TestPrivilegedConnectRuleReplace(t *testing.T) {
	e := newConnEnv(t, datapath.Options{ProcessEvents: true})
	kept := deny(0, protoTCP, []string{"10.244.250.0/24"}, 8080)
	sets := [][]datapath.ConnectRule{
		{kept},
		{kept, deny(1, protoUDP, []string{"10.244.250.1/32"}), deny(2, 0, []string{"10.0.0.0/8"}, 9)},
		{deny(1, protoTCP, []string{"10.244.250.1/32"}, 7), kept, deny(3, protoTCP, []string{"10.244.0.0/16"}, 8080)},
		{kept, deny(1, protoUDP, []string{"10.244.250.0/25", "10.244.250.1/32"}, 53)},
	}
	var (
		wg    sync.WaitGroup
		stop  = make(chan struct{})
		n     int
		errMu sync.Mutex
		errs  []error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := e.d.SetConnectRules(sets[i%len(sets)]); err != nil {
				errMu.Lock()
				errs = append(errs, err)
				errMu.Unlock()
				return
			}
			n++
		}
	}()
	res := runSockClient(t, e.ns, e.cg, "tcp", back1TCP, 500)
	close(stop)
	wg.Wait()
	require.Empty(t, errs)
	refused := 0
	for _, r := range res {
		if r.Call == "connect" && syscall.Errno(r.Errno) == syscall.EPERM {
			refused++
		}
	}
	t.Logf("%d replacements during %d connects", n, len(res))
	assert.Equal(t, len(res), refused, "every connect refused: %v", summary(res))
	assert.Greater(t, n, 50, "the rules changed while the client ran")
}

func summary(res []sockResult) map[string]int {
	out := map[string]int{}
	for _, r := range res {
		out[fmt.Sprintf("%s/%d/%s", r.Call, r.Errno, r.Reply)]++
	}
	return out
}

// Pinned rules outlive the agent: the hooks keep refusing after the loader
// closed, and a new loader adopts the maps (a kept rule stays in force, a
// rule the new set lacks is removed with all its entries).
func TestPrivilegedConnectRulePinnedRestart(t *testing.T) {
	s := newSockLB(t)
	root := filepath.Join(harness.BPFFS(t), "sluice")
	opts := datapath.Options{ProcessEvents: true}
	d1, err := datapath.Load(root, opts)
	require.NoError(t, err)
	t.Cleanup(func() { datapath.Unpin(root) })
	require.NoError(t, d1.SocketLB().Attach(s.cg))
	e := &connEnv{sockLB: s}
	kept, gone := deny(0, protoTCP, []string{"10.244.250.1/32"}, 8080), deny(1, protoTCP, []string{"10.244.250.2/32"}, 8080)
	gone.Ports = append(gone.Ports, 8081)
	require.NoError(t, d1.SetConnectRules([]datapath.ConnectRule{kept, gone}))
	require.NoError(t, d1.SetConnectScope(12345, 1))
	require.NoError(t, d1.Close())
	denied(t, e.one(t, "tcp", back1TCP), "connect", "after the loader closed")
	denied(t, e.one(t, "tcp", back2TCP), "connect", "after the loader closed, the other rule")

	d2, err := datapath.Load(root, opts)
	require.NoError(t, err)
	t.Cleanup(func() { d2.Close() })
	t.Cleanup(func() { assert.NoError(t, d2.SocketLB().Detach()) })
	n, err := d2.ConnectEntries()
	require.NoError(t, err)
	assert.Equal(t, datapath.ConnectEntries{Slots: 2, Dests: 2, Ports: 2, Scope: 1}, n, "adopted")
	scopes, err := d2.ConnectScopes()
	require.NoError(t, err)
	assert.Equal(t, map[uint32]uint64{12345: 1}, scopes)
	require.NoError(t, d2.SetConnectRules([]datapath.ConnectRule{kept}))
	denied(t, e.one(t, "tcp", back1TCP), "connect", "kept by the new loader")
	replied(t, e.one(t, "tcp", back2TCP), "backend-2", "removed by the new loader")
	n, err = d2.ConnectEntries()
	require.NoError(t, err)
	assert.Equal(t, datapath.ConnectEntries{Slots: 1, Dests: 1, Ports: 1, Scope: 1}, n, "the removed rule's entries are gone")
}
