package servicemgr

import (
	"errors"
	"io"
	"net/netip"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/lb"
	"github.com/sluicenet/sluice/agent/lb/translate"
)

// endpoints is the CNI's view of the node: a fixed list.
type endpoints struct {
	list []api.Endpoint
	err  error
}

func (e endpoints) List() ([]api.Endpoint, error) {
	if e.err != nil {
		return nil, e.err
	}
	return e.list, nil
}

// manager returns a manager without maps: Desired and the pod join read
// only the objects and the endpoints.
func manager(eps Endpoints, log logrus.FieldLogger) *Manager {
	return &Manager{cfg: Config{NodeName: "node-a"}, eps: eps, log: log}
}

func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func podObj(ns, name, ip, node string, ready bool, labels map[string]string) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: 8080},
		}}}},
		Status: corev1.PodStatus{PodIP: ip, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}},
	}
}

func TestPodsJoin(t *testing.T) {
	web := map[string]string{"app": "web"}
	tests := []struct {
		name string
		eps  []api.Endpoint
		objs []*corev1.Pod
		want []translate.Pod
	}{{
		name: "local pod without object is ready with no labels",
		eps:  []api.Endpoint{{PodNamespace: "default", PodName: "a", IPv4: "10.0.0.1"}},
		want: []translate.Pod{{Namespace: "default", Name: "a", IP: addr("10.0.0.1"), NodeName: "node-a", Ready: true}},
	}, {
		name: "CNI address and this node win over the object",
		eps:  []api.Endpoint{{PodNamespace: "default", PodName: "a", IPv4: "10.0.0.1"}},
		objs: []*corev1.Pod{podObj("default", "a", "10.9.9.9", "elsewhere", false, web)},
		want: []translate.Pod{{Namespace: "default", Name: "a", IP: addr("10.0.0.1"), NodeName: "node-a",
			Labels: web, Ports: map[string]int32{"http": 8080}}},
	}, {
		name: "remote pods come from objects; no address, not a pod",
		objs: []*corev1.Pod{
			podObj("default", "b", "10.1.0.2", "node-b", true, web),
			podObj("default", "pending", "", "node-b", false, web),
		},
		want: []translate.Pod{{Namespace: "default", Name: "b", IP: addr("10.1.0.2"), NodeName: "node-b",
			Labels: web, Ready: true, Ports: map[string]int32{"http": 8080}}},
	}, {
		name: "endpoints without pod name or address are skipped",
		eps: []api.Endpoint{
			{PodNamespace: "default", IPv4: "10.0.0.3"},
			{PodNamespace: "default", PodName: "noip"},
		},
		want: nil,
	}, {
		name: "sorted by namespace/name",
		eps:  []api.Endpoint{{PodNamespace: "z", PodName: "a", IPv4: "10.0.0.1"}},
		objs: []*corev1.Pod{podObj("a", "z", "10.1.0.1", "node-b", true, nil)},
		want: []translate.Pod{
			{Namespace: "a", Name: "z", IP: addr("10.1.0.1"), NodeName: "node-b", Ready: true, Ports: map[string]int32{"http": 8080}},
			{Namespace: "z", Name: "a", IP: addr("10.0.0.1"), NodeName: "node-a", Ready: true},
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := manager(endpoints{}, quietLog())
			assert.Equal(t, tc.want, m.pods(tc.objs, tc.eps))
		})
	}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// selectorService is a ClusterIP Service selecting app=web, target port "http".
func selectorService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.96.0.10", Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("http")}},
		},
	}
}

func TestDesired(t *testing.T) {
	web := map[string]string{"app": "web"}
	eps := endpoints{list: []api.Endpoint{{PodNamespace: "default", PodName: "local", IPv4: "10.0.0.1"}}}
	m := manager(eps, quietLog())
	m.SetObjects(Objects{
		Services: []*corev1.Service{selectorService()},
		Pods: []*corev1.Pod{
			podObj("default", "local", "10.0.0.1", "node-a", true, web),
			podObj("default", "remote", "10.1.0.1", "node-b", true, web),
		},
	})
	svcs, diags := m.Desired()
	assert.Empty(t, diags)
	require.Len(t, svcs, 1)
	assert.Equal(t, lb.ServiceName{Namespace: "default", Name: "web", Port: "http"}, svcs[0].Name)
	assert.Equal(t, []lb.Backend{
		{Addr: netip.MustParseAddrPort("10.0.0.1:8080"), State: lb.Active, Local: true, Pod: "default/local"},
		{Addr: netip.MustParseAddrPort("10.1.0.1:8080"), State: lb.Active, Pod: "default/remote"},
	}, svcs[0].Backends)

	// An endpoint list failure leaves the objects' view: a pod object
	// without a node name is then not known to run here.
	m.eps = endpoints{err: errors.New("injected")}
	m.objs.Pods[0].Spec.NodeName = ""
	svcs, _ = m.Desired()
	require.Len(t, svcs, 1)
	require.Len(t, svcs[0].Backends, 2)
	assert.False(t, svcs[0].Backends[0].Local, "without the CNI's view no backend is known local")
}

func TestLogDiagnosticsOnce(t *testing.T) {
	log, hook := logtest.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	m := manager(endpoints{}, log)
	a := translate.Diagnostic{Service: "default/a", Reason: "no cluster IP"}
	b := translate.Diagnostic{Service: "default/b", Reason: "other proxy", NotOurs: true}

	m.logDiagnostics([]translate.Diagnostic{a, b})
	require.Len(t, hook.AllEntries(), 2)
	assert.Equal(t, logrus.WarnLevel, hook.AllEntries()[0].Level)
	assert.Equal(t, logrus.DebugLevel, hook.AllEntries()[1].Level, "a Service left to another proxy is expected")

	hook.Reset()
	m.logDiagnostics([]translate.Diagnostic{a, b})
	assert.Empty(t, hook.AllEntries(), "the same diagnostics are not logged again")

	m.logDiagnostics(nil)
	m.logDiagnostics([]translate.Diagnostic{a})
	require.Len(t, hook.AllEntries(), 1, "a diagnostic that went away and came back is logged again")
	assert.Equal(t, "default/a", hook.LastEntry().Data["service"])
}
