package integration

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/lb/maglev"
	"github.com/sluicenet/sluice/test/harness"
)

const testMaglevSize = 4093

// maglevByAddr reads a service's Maglev table back from node n's kernel (the
// agent's GET /v1/bpf/lb/maglev) as backend addresses, entry by entry, and
// returns the backend IDs the node uses too.
func maglevByAddr(t *testing.T, n *harness.Node, service string) ([]string, map[string]uint32) {
	t.Helper()
	tables, err := n.Client().Maglev(context.Background(), service)
	require.NoError(t, err)
	require.Len(t, tables, 1, "%s: one frontend", service)
	tb := tables[0]
	require.Empty(t, tb.Error)
	require.Equal(t, testMaglevSize, tb.Size)
	require.Len(t, tb.Entries, testMaglevSize)
	addr := map[uint32]string{}
	ids := map[string]uint32{}
	for _, b := range tb.Backends {
		addr[b.ID] = b.Address
		ids[b.Address] = b.ID
	}
	out := make([]string, len(tb.Entries))
	for i, id := range tb.Entries {
		a, ok := addr[id]
		require.True(t, ok, "entry %d: backend %d named", i, id)
		out[i] = a
	}
	return out, ids
}

func waitMaglev(t *testing.T, n *harness.Node, service string, backends int) {
	t.Helper()
	var (
		last    []api.MaglevTable
		lastErr error
	)
	ok := assert.Eventually(t, func() bool {
		last, lastErr = n.Client().Maglev(context.Background(), service)
		return lastErr == nil && len(last) == 1 && last[0].Error == "" && len(last[0].Backends) == backends
	}, 10*time.Second, 50*time.Millisecond)
	if !ok {
		t.Fatalf("%s: no Maglev table with %d backends on %s; last answer %+v, error %v", service, backends, n.Name, last, lastErr)
	}
}

// Two agents with --lb-algorithm=maglev hold, in their kernels, the same
// table for a service with the same backends, although they gave the
// backends other IDs; removing a backend changes about 1/N of the entries,
// the same way on both. A NodePort asked from outside at node 1 from given
// source ports is answered by the pod the table names for each flow.
func TestPrivilegedMaglevTwoNodes(t *testing.T) {
	c := newTwoNodesWith(t, twoNodesOptions{routing: "native", external: true,
		args: []string{"--lb-algorithm", "maglev", "--maglev-table-size", fmt.Sprint(testMaglevSize)}})

	// Ten backends: the two pods and eight addresses of node 2's PodCIDR
	// that nothing serves (only the tables are compared for this service).
	eps := [][5]string{{c.p1.IP.String(), c.n1.Name, "true", "true", "false"}, {c.p2.IP.String(), c.n2.Name, "true", "true", "false"}}
	for i := range 8 {
		a := c.n2.PodCIDR.Addr().As4()
		a[3] = byte(200 + i)
		eps = append(eps, [5]string{netip.AddrFrom4(a).String(), c.n2.Name, "true", "true", "false"})
	}
	reversed := make([][5]string, len(eps))
	for i, e := range eps {
		reversed[len(eps)-1-i] = e
	}
	// Node 2 first gets another service, whose backends take IDs there.
	writeManifest(t, c.n2, "mg-other.yaml", plainServiceYAML("mg-other", "10.96.0.91", "")+
		sliceYAML("mg-other", [5]string{"10.244.2.190", c.n2.Name, "true", "true", "false"}, [5]string{"10.244.2.191", c.n2.Name, "true", "true", "false"}))
	waitMaglev(t, c.n2, "default/mg-other", 2)
	writeManifest(t, c.n1, "mg.yaml", plainServiceYAML("mg", "10.96.0.90", "")+sliceYAML("mg", eps...))
	writeManifest(t, c.n2, "mg.yaml", plainServiceYAML("mg", "10.96.0.90", "")+sliceYAML("mg", reversed...))
	waitMaglev(t, c.n1, "default/mg", 10)
	waitMaglev(t, c.n2, "default/mg", 10)
	t1, ids1 := maglevByAddr(t, c.n1, "default/mg")
	t2, ids2 := maglevByAddr(t, c.n2, "default/mg")
	require.NotEqual(t, ids1, ids2, "the nodes gave the backends different IDs")
	require.Equal(t, t1, t2, "both kernels hold the same table")

	svcs, err := c.n1.Client().ListServices(context.Background())
	require.NoError(t, err)
	for _, s := range svcs {
		assert.Equal(t, "maglev", s.Algorithm, s.Name)
	}
	// The CLI: the algorithm column, and the table's size and shares.
	out, err := c.n1.NS.Command(harness.Bin(t, "sluice"), "--socket", c.n1.Socket(), "service", "list").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Regexp(t, `default/mg:http +ClusterIP +10\.96\.0\.90:80/TCP +maglev `, string(out))
	out, err = c.n1.NS.Command(harness.Bin(t, "sluice"), "--socket", c.n1.Socket(), "bpf", "lb", "maglev", "get", "default/mg").CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Logf("sluice bpf lb maglev get default/mg:\n%s", out)
	assert.Regexp(t, fmt.Sprintf(`default/mg:http +10\.96\.0\.90:80/TCP +\d+ +%d +\d+ +%s:%d +\d+ +\d+\.\d\d%%`, testMaglevSize, regexp.QuoteMeta(c.p1.IP.String()), podPort), string(out))

	// One backend goes on both nodes.
	gone := eps[5][0] + ":" + fmt.Sprint(podPort)
	rest := append(append([][5]string{}, eps[:5]...), eps[6:]...)
	writeManifest(t, c.n1, "mg.yaml", plainServiceYAML("mg", "10.96.0.90", "")+sliceYAML("mg", rest...))
	writeManifest(t, c.n2, "mg.yaml", plainServiceYAML("mg", "10.96.0.90", "")+sliceYAML("mg", rest...))
	waitMaglev(t, c.n1, "default/mg", 9)
	waitMaglev(t, c.n2, "default/mg", 9)
	a1, _ := maglevByAddr(t, c.n1, "default/mg")
	a2, _ := maglevByAddr(t, c.n2, "default/mg")
	require.Equal(t, a1, a2, "both kernels hold the same table after the removal")
	changed, wasGone := 0, 0
	for i := range a1 {
		if a1[i] != t1[i] {
			changed++
			if t1[i] == gone {
				wasGone++
			}
		}
	}
	t.Logf("removing 1 of 10 backends changed %d of %d entries (%.2f %%), %d of them the removed backend's",
		changed, testMaglevSize, 100*float64(changed)/testMaglevSize, wasGone)
	assert.LessOrEqual(t, float64(changed)/testMaglevSize, 0.12)

	// NodePort to the two pods, asked from outside at node 1: each flow is
	// answered by the pod the kernel's table names for its hash.
	const nodePort = 30091
	writeManifest(t, c.n1, "mg-np.yaml", nodePortYAML("mg-np", "10.96.0.92", nodePort, false, "")+
		sliceYAML("mg-np", eps[0], eps[1]))
	npFE := fmt.Sprintf("0.0.0.0:%d/TCP", nodePort) // the service's NodePort frontend (it has a ClusterIP one too)
	waitMaglev(t, c.n1, npFE, 2)
	np, _ := maglevByAddr(t, c.n1, npFE)
	podOf := map[string]string{
		netip.AddrPortFrom(c.p1.IP, podPort).String(): c.p1.Name,
		netip.AddrPortFrom(c.p2.IP, podPort).String(): c.p2.Name,
	}
	client, node := netip.MustParseAddr(npClientIP), netip.MustParseAddr(npNodeIP)
	seen := map[string]int{}
	for sport := uint16(41000); sport < 41030; sport++ {
		want := podOf[np[maglev.FlowHash(client, node, sport, nodePort, 6)%testMaglevSize]]
		got, err := harness.AskFrom(c.ext, fmt.Sprintf("%s:%d", npClientIP, sport), fmt.Sprintf("%s:%d", npNodeIP, nodePort), timeout)
		require.NoError(t, err, "sport %d", sport)
		require.Equal(t, want, got, "sport %d", sport)
		seen[got]++
	}
	t.Logf("NodePort flows by pod: %v", seen)
	assert.Len(t, seen, 2)
}

// Two agents with the default --lb-algorithm random: a Service annotated
// with Cilium's service.cilium.io/lb-algorithm: maglev gets the same
// Maglev table on both nodes; an unannotated one gets none and stays
// random; service list says which is which.
func TestPrivilegedMaglevAnnotatedOnRandomNodes(t *testing.T) {
	c := newTwoNodesWith(t, twoNodesOptions{routing: "native", external: true,
		args: []string{"--maglev-table-size", fmt.Sprint(testMaglevSize)}})
	eps := [][5]string{{c.p1.IP.String(), c.n1.Name, "true", "true", "false"}, {c.p2.IP.String(), c.n2.Name, "true", "true", "false"}}
	for i := range 4 {
		a := c.n2.PodCIDR.Addr().As4()
		a[3] = byte(200 + i)
		eps = append(eps, [5]string{netip.AddrFrom4(a).String(), c.n2.Name, "true", "true", "false"})
	}
	annotated := strings.Replace(plainServiceYAML("mg", "10.96.0.90", ""), "  namespace: default\n",
		"  namespace: default\n  annotations:\n    service.cilium.io/lb-algorithm: maglev\n", 1)
	for _, n := range []*harness.Node{c.n1, c.n2} {
		writeManifest(t, n, "mg.yaml", annotated+sliceYAML("mg", eps...)+"---\n"+plainServiceYAML("plain", "10.96.0.92", "")+sliceYAML("plain", eps...))
	}
	waitMaglev(t, c.n1, "default/mg", len(eps))
	waitMaglev(t, c.n2, "default/mg", len(eps))
	t1, _ := maglevByAddr(t, c.n1, "default/mg")
	t2, _ := maglevByAddr(t, c.n2, "default/mg")
	require.Equal(t, t1, t2, "both kernels hold the same table")

	waitBackends(t, c.n1, "10.96.0.92:80", len(eps))
	tables, err := c.n1.Client().Maglev(context.Background(), "default/plain")
	require.NoError(t, err)
	require.Len(t, tables, 1)
	assert.Contains(t, tables[0].Error, "no Maglev table", "the unannotated Service has no table")
	svcs, err := c.n1.Client().ListServices(context.Background())
	require.NoError(t, err)
	algs := map[string]string{}
	for _, s := range svcs {
		algs[s.Name] = s.Algorithm
	}
	assert.Equal(t, "maglev", algs["default/mg:http"])
	assert.Equal(t, "random", algs["default/plain:http"])
}
