package servicemgr

import (
	"net/netip"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/lb"
	"github.com/sluicenet/sluice/agent/lb/translate"
	"github.com/sluicenet/sluice/agent/source"
	"github.com/sluicenet/sluice/datapath"
	dplb "github.com/sluicenet/sluice/datapath/lbmap"
	"github.com/sluicenet/sluice/datapath/progtest"
	"github.com/sluicenet/sluice/test/harness"
)

func annotatedNodePort(i int, nodePort int32, ann map[string]string) *corev1.Service {
	s := clusterIPService(svcName(i), vipOf(i))
	s.Spec.Type = corev1.ServiceTypeNodePort
	s.Spec.Ports[0].NodePort = nodePort
	s.Annotations = ann
	return s
}

// The manager over real maps on an snat/random node: a Service annotated
// dsr and maglev gets the mode flags on its NodePort entry and a Maglev
// table, and service list shows its mode and algorithm; an unannotated one
// follows the node; a bad value keeps the node's default, shows the
// warning and logs it once; removing the annotations takes flags and table
// away.
func TestPrivilegedManagerServiceAnnotations(t *testing.T) {
	harness.RequirePrivileged(t)
	d := progtest.Load(t, harness.BPFFS(t), datapath.Options{MaglevTableSize: testMaglevSize})
	log, hook := logtest.NewNullLogger()
	m, err := New(Config{NodeName: "node-a", MaglevTableSize: testMaglevSize, LB: translate.LBDefaults{Mode: lb.ModeSNAT, Algorithm: lb.Random}},
		d.LB(), d.CT(), endpoints{}, log)
	require.NoError(t, err)
	var objs Objects
	for i, ann := range []map[string]string{
		{translate.AnnotationLBMode: "dsr", translate.CiliumAnnotationLBAlgorithm: "maglev"},
		nil,
		{translate.AnnotationLBMode: "fast"},
	} {
		objs.Services = append(objs.Services, annotatedNodePort(i, int32(30080+i), ann))
		objs.EndpointSlices = append(objs.EndpointSlices, endpointSlice(svcName(i), backendOf(i, 0), backendOf(i, 1)))
	}
	m.SetObjects(objs)
	_, err = m.Sync(false)
	require.NoError(t, err)

	byFE := func() map[string]api.Service {
		out := map[string]api.Service{}
		for _, s := range m.Services() {
			out[s.Frontend] = s
		}
		return out
	}
	got := byFE()
	assert.Equal(t, "dsr", got["0.0.0.0:30080"].Mode)
	assert.Equal(t, "maglev", got["0.0.0.0:30080"].Algorithm)
	assert.Equal(t, "", got[vipOf(0).String()+":80"].Mode, "ClusterIP: no mode")
	assert.Equal(t, "maglev", got[vipOf(0).String()+":80"].Algorithm)
	assert.Equal(t, "snat", got["0.0.0.0:30081"].Mode)
	assert.Equal(t, "random", got["0.0.0.0:30081"].Algorithm)
	assert.Empty(t, got["0.0.0.0:30081"].Warnings)
	assert.Equal(t, "snat", got["0.0.0.0:30082"].Mode, "a bad value keeps the node's mode")
	assert.Equal(t, []string{`annotation service.sluice.io/lb-mode="fast": want snat, dsr or hybrid; using the node's mode snat`},
		got["0.0.0.0:30082"].Warnings)

	npFE := func(port uint16) dplb.Frontend {
		return dplb.Frontend{Addr: netip.IPv4Unspecified(), Port: port, Proto: uint8(lb.TCP)}
	}
	svcs, err := d.LB().Services()
	require.NoError(t, err)
	assert.Equal(t, dplb.FlagNodePort|dplb.FlagModeSet|dplb.FlagDSR|dplb.FlagMaglev, svcs[npFE(30080)].Flags)
	assert.Equal(t, dplb.FlagMaglev, svcs[dplb.Frontend{Addr: vipOf(0), Port: 80, Proto: uint8(lb.TCP)}].Flags)
	assert.Equal(t, dplb.FlagNodePort, svcs[npFE(30081)].Flags, "unannotated: the node's mode, no table")
	assert.Equal(t, dplb.FlagNodePort, svcs[npFE(30082)].Flags)
	tables, err := d.LB().MaglevIDs()
	require.NoError(t, err)
	assert.Len(t, tables, 2, "tables for the maglev Service's two frontends only")

	var warned []logrus.Fields
	for _, e := range hook.AllEntries() {
		if e.Message == "Service annotation not honoured" {
			warned = append(warned, e.Data)
		}
	}
	require.Len(t, warned, 1)
	assert.Equal(t, "default/"+svcName(2), warned[0]["service"])

	// A resync logs nothing again; the annotations removed (an incremental
	// change) take the flags and the tables away.
	hook.Reset()
	_, err = m.Sync(true)
	require.NoError(t, err)
	for _, e := range hook.AllEntries() {
		assert.NotEqual(t, "Service annotation not honoured", e.Message)
	}
	objs = objs.withChanges(source.Changes{Services: []types.NamespacedName{nn(svcName(0))}})
	objs.Services[0] = annotatedNodePort(0, 30080, nil)
	m.SetObjects(objs)
	_, err = m.Sync(false)
	require.NoError(t, err)
	svcs, err = d.LB().Services()
	require.NoError(t, err)
	assert.Equal(t, dplb.FlagNodePort, svcs[npFE(30080)].Flags)
	tables, err = d.LB().MaglevIDs()
	require.NoError(t, err)
	assert.Empty(t, tables)
	assert.Equal(t, "snat", byFE()["0.0.0.0:30080"].Mode)
}
