package servicemgr

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/lb"
	"github.com/sluicenet/sluice/datapath"
	dplb "github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/test/harness"
)

func svc(vip string, port uint16, proto lb.Proto, backends ...string) lb.Service {
	s := lb.Service{
		Name:     lb.ServiceName{Namespace: "default", Name: vip},
		Kind:     lb.ClusterIP,
		Frontend: lb.Frontend{Addr: netip.MustParseAddr(vip), Port: port, Proto: proto},
	}
	for _, b := range backends {
		s.Backends = append(s.Backends, lb.Backend{Addr: netip.MustParseAddrPort(b)})
	}
	return s
}

func fe(vip string, port uint16, proto lb.Proto) dplb.Frontend {
	return dplb.Frontend{Addr: netip.MustParseAddr(vip), Port: port, Proto: uint8(proto)}
}

// backendAddrs resolves a service entry's backend IDs to addresses.
func backendAddrs(t *testing.T, dp *dplb.Map, f dplb.Frontend) []string {
	t.Helper()
	svcs, err := dp.Services()
	require.NoError(t, err)
	bes, err := dp.Backends()
	require.NoError(t, err)
	s, ok := svcs[f]
	require.True(t, ok, "service %v in the map", f)
	var out []string
	for _, id := range s.Backends {
		b, ok := bes[id]
		require.True(t, ok, "backend %d of %v exists", id, f)
		out = append(out, netip.AddrPortFrom(b.Addr, b.Port).String())
	}
	return out
}

func TestPrivilegedLBSync(t *testing.T) {
	harness.RequirePrivileged(t)
	dp := progtest.Load(t, harness.BPFFS(t), datapath.Options{}).LB()

	r, err := newLBSync(dp)
	require.NoError(t, err)
	web := svc("10.96.0.10", 80, lb.TCP, "10.244.1.2:8080", "10.244.1.3:8080")
	web.Affinity = 3 * time.Hour
	dns := svc("10.96.0.53", 53, lb.UDP, "10.244.1.4:53")
	st, err := r.Apply([]lb.Service{web, dns}, false)
	require.NoError(t, err)
	assert.Equal(t, 2, st.UpsertedServices)
	assert.Equal(t, 3, st.UpsertedBackends)

	assert.Equal(t, []string{"10.244.1.2:8080", "10.244.1.3:8080"}, backendAddrs(t, dp, fe("10.96.0.10", 80, lb.TCP)))
	assert.Equal(t, []string{"10.244.1.4:53"}, backendAddrs(t, dp, fe("10.96.0.53", 53, lb.UDP)))
	svcs, err := dp.Services()
	require.NoError(t, err)
	webEntry := svcs[fe("10.96.0.10", 80, lb.TCP)]
	assert.Equal(t, dplb.FlagAffinity, webEntry.Flags&dplb.FlagAffinity)
	assert.Equal(t, 3*time.Hour, webEntry.AffinityTimeout)
	rns, err := dp.RevNATs()
	require.NoError(t, err)
	assert.Equal(t, fe("10.96.0.10", 80, lb.TCP), rns[webEntry.RevNATID])

	// Applying the same state again writes nothing.
	st, err = r.Apply([]lb.Service{web, dns}, false)
	require.NoError(t, err)
	assert.Zero(t, st.UpsertedServices+st.UpsertedBackends+st.DeletedServices+st.DeletedBackends)

	// Removing a backend keeps the other's ID (its conntrack entries stay valid).
	keepID, ok := r.BackendID(netip.MustParseAddrPort("10.244.1.2:8080"), lb.TCP)
	require.True(t, ok)
	web.Backends = web.Backends[:1]
	st, err = r.Apply([]lb.Service{web, dns}, false)
	require.NoError(t, err)
	assert.Equal(t, 1, st.DeletedBackends)
	svcs, err = dp.Services()
	require.NoError(t, err)
	assert.Equal(t, []uint32{keepID}, svcs[fe("10.96.0.10", 80, lb.TCP)].Backends)

	// A restarted agent adopts the IDs: same state, nothing rewritten.
	r2, err := newLBSync(dp)
	require.NoError(t, err)
	st, err = r2.Apply([]lb.Service{web, dns}, false)
	require.NoError(t, err)
	assert.Zero(t, st.UpsertedServices+st.UpsertedBackends, "adopted state is current")
	id2, _ := r2.BackendID(netip.MustParseAddrPort("10.244.1.2:8080"), lb.TCP)
	assert.Equal(t, keepID, id2)

	// A full resync repairs an entry removed behind the LB sync's back.
	require.NoError(t, dp.DeleteService(fe("10.96.0.53", 53, lb.UDP)))
	st, err = r2.Apply([]lb.Service{web, dns}, true)
	require.NoError(t, err)
	assert.Equal(t, 1, st.UpsertedServices)
	assert.Equal(t, []string{"10.244.1.4:53"}, backendAddrs(t, dp, fe("10.96.0.53", 53, lb.UDP)))

	// Removing a service removes its entries, its reverse NAT and its backends.
	_, err = r2.Apply([]lb.Service{web}, false)
	require.NoError(t, err)
	svcs, err = dp.Services()
	require.NoError(t, err)
	assert.Len(t, svcs, 1)
	bes, err := dp.Backends()
	require.NoError(t, err)
	assert.Len(t, bes, 1)
	rns, err = dp.RevNATs()
	require.NoError(t, err)
	assert.Len(t, rns, 1)
}

// BenchmarkProgram10k measures programming 10 000 two-backend services into
// the maps from scratch.
func BenchmarkProgram10k(b *testing.B) {
	harness.RequirePrivileged(b)
	var desired []lb.Service
	for i := 0; i < 10000; i++ {
		vip := netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)})
		desired = append(desired, lb.Service{
			Name: lb.ServiceName{Namespace: "default", Name: vip.String()}, Kind: lb.ClusterIP,
			Frontend: lb.Frontend{Addr: vip, Port: 80, Proto: lb.TCP},
			Backends: []lb.Backend{
				{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 244, 1, byte(i)}), 8080)},
				{Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 244, 2, byte(i)}), 8080)},
			},
		})
	}
	bpffs := harness.BPFFS(b)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		root := filepath.Join(bpffs, fmt.Sprintf("sluice-%d", i)) // empty maps each round
		dp, err := datapath.Load(root, datapath.Options{})
		require.NoError(b, err)
		r, err := newLBSync(dp.LB())
		require.NoError(b, err)
		b.StartTimer()
		_, err = r.Apply(desired, false)
		require.NoError(b, err)
		b.StopTimer()
		dp.Close()
		require.NoError(b, datapath.Unpin(root))
	}
}

// A full services map is an error naming it, the services that fit are
// programmed, and the rest is retried by the next pass.
func TestPrivilegedLBSyncMapFull(t *testing.T) {
	harness.RequirePrivileged(t)
	// Each service takes a master entry plus one slot per backend.
	dp := progtest.Load(t, harness.BPFFS(t), datapath.Options{MaxEntries: map[string]uint32{"sluice_lb4_services_v1": 6}}).LB()
	r, err := newLBSync(dp)
	require.NoError(t, err)
	var desired []lb.Service
	for i := 1; i <= 4; i++ {
		desired = append(desired, svc(fmt.Sprintf("10.96.0.%d", i), 80, lb.TCP, fmt.Sprintf("10.244.1.%d:8080", i)))
	}
	st, err := r.Apply(desired, false)
	require.Error(t, err)
	assert.ErrorIs(t, err, datapath.ErrMapFull)
	assert.True(t, st.MapFull)
	assert.Equal(t, 3, st.UpsertedServices, "the services that fit are programmed")
	assert.Equal(t, 1, st.Failed)
	// Failed names exactly the service the maps do not hold, with the error.
	inMap, err := dp.Services()
	require.NoError(t, err)
	for _, s := range desired {
		_, ok := inMap[fromFrontend(s.Frontend)]
		if ferr := r.Failed(s.Frontend); ok {
			assert.NoError(t, ferr, "%s is in the map", s.Frontend)
		} else {
			assert.ErrorIs(t, ferr, datapath.ErrMapFull, "%s is not in the map", s.Frontend)
		}
	}

	// Room again (one service removed): the next pass programs the rest.
	st, err = r.Apply(desired[1:], false)
	require.NoError(t, err)
	svcs, err := dp.Services()
	require.NoError(t, err)
	assert.Len(t, svcs, 3)
	for _, s := range desired {
		assert.NoError(t, r.Failed(s.Frontend), "%s: programmed or no longer desired", s.Frontend)
	}
}
