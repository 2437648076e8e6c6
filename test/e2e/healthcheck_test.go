package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluicenet/sluice/test/harness"
)

// hcResult is a health-check port's answer (status 0: no connection).
type hcResult struct {
	status int
	weight string
	body   struct {
		Service struct {
			Namespace string `json:"namespace"`
			Name      string `json:"name"`
		} `json:"service"`
		LocalEndpoints      int  `json:"localEndpoints"`
		ServiceProxyHealthy bool `json:"serviceProxyHealthy"`
	}
	err error
}

// getHC asks http://addr/healthz, from the host (ns nil) or from ns.
func getHC(ns *harness.NetNS, addr string) hcResult {
	tr := &http.Transport{DisableKeepAlives: true}
	if ns != nil {
		tr.DialContext = func(_ context.Context, _, a string) (net.Conn, error) {
			return harness.Dial(ns, "tcp4", "", a, 3*time.Second)
		}
	}
	c := &http.Client{Timeout: 3 * time.Second, Transport: tr}
	var r hcResult
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		r.err = err
		return r
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r.status, r.weight = resp.StatusCode, resp.Header.Get("X-Load-Balancing-Endpoint-Weight")
	if resp.Header.Get("Content-Type") != "application/json" {
		r.err = fmt.Errorf("content type %q", resp.Header.Get("Content-Type"))
	} else if err := json.Unmarshal(b, &r.body); err != nil {
		r.err = fmt.Errorf("body %q: %w", b, err)
	}
	return r
}

// waitHC waits until addr answers status with n local endpoints.
func waitHC(t *testing.T, what string, ns *harness.NetNS, addr string, status, n int) {
	t.Helper()
	var last hcResult
	ok := assert.Eventually(t, func() bool {
		last = getHC(ns, addr)
		return last.err == nil && last.status == status && last.body.LocalEndpoints == n && last.weight == fmt.Sprint(n)
	}, 60*time.Second, 250*time.Millisecond, "%s: %s wants %d with %d local endpoints", what, addr, status, n)
	if !ok {
		t.Fatalf("%s: last answer %+v", what, last)
	}
	assert.True(t, last.body.ServiceProxyHealthy)
}

// TestE2EHealthCheckNodePort: a LoadBalancer Service with
// externalTrafficPolicy Local gets a health-check node port from the API
// server; the agent answers it at the node's InternalIP from the host, and
// at the test device's address from the client behind it (through the host
// programs), as kube-proxy does: 200 with a ready pod here, 503 once the
// only pod is terminating (still serving) and once there is none, and the
// port closed when the policy changes to Cluster (the port deallocated).
// The node's proxy health answers on 10256.
func TestE2EHealthCheckNodePort(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t)
	node := c.nodeName(t)
	nodeObj, err := c.cs.CoreV1().Nodes().Get(ctxT(t, 10*time.Second), node, metav1.GetOptions{})
	require.NoError(t, err)
	var nodeIP string
	for _, a := range nodeObj.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			nodeIP = a.Address
		}
	}
	require.NotEmpty(t, nodeIP)

	sel := map[string]string{"app": "echo-hc"}
	svc, err := c.cs.CoreV1().Services(ns).Create(ctxT(t, 30*time.Second), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo-hc"},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			Selector: sel,
			Ports:    []corev1.ServicePort{{Name: "tcp", Port: 80, TargetPort: intstr.FromInt32(9000), Protocol: corev1.ProtocolTCP}},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	hcPort := svc.Spec.HealthCheckNodePort
	require.NotZero(t, hcPort, "the API server allocates a health-check node port")
	host := fmt.Sprintf("%s:%d", nodeIP, hcPort)
	ext := &harness.NetNS{Name: extNetNS}
	outside := fmt.Sprintf("%s:%d", extNodeIP, hcPort)
	t.Logf("health-check node port %d", hcPort)

	waitHC(t, "no pod yet", nil, host, 503, 0)

	// A pod whose preStop sleep keeps it serving while it terminates.
	grace := int64(60)
	_, err = c.cs.CoreV1().Pods(ns).Create(ctxT(t, 30*time.Second), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hc-1", Labels: sel},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name: "echo", Image: echoImage, ImagePullPolicy: corev1.PullNever,
				Ports: []corev1.ContainerPort{{ContainerPort: 9000}, {ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
					PeriodSeconds: 1,
				},
				Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 30}}},
			}},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	c.waitReady(t, ns, "hc-1")
	waitHC(t, "one ready pod", nil, host, 200, 1)
	waitHC(t, "one ready pod, through the test device", ext, outside, 200, 1)

	svcs, err := c.agent.ListServices(ctxT(t, 10*time.Second))
	require.NoError(t, err)
	shown := false
	for _, s := range svcs {
		if strings.HasPrefix(s.Name, ns+"/echo-hc:") && s.HealthCheck != nil {
			shown = s.HealthCheck.Port == int(hcPort) && s.HealthCheck.Listening
		}
	}
	assert.True(t, shown, "sluice service list shows the port")

	require.NoError(t, c.cs.CoreV1().Pods(ns).Delete(ctxT(t, 10*time.Second), "hc-1", metav1.DeleteOptions{}))
	waitHC(t, "only a terminating (serving) pod", nil, host, 503, 0)
	p, err := c.cs.CoreV1().Pods(ns).Get(ctxT(t, 10*time.Second), "hc-1", metav1.GetOptions{})
	require.NoError(t, err, "the pod is still terminating")
	require.NotNil(t, p.DeletionTimestamp)

	for _, path := range []string{"/healthz", "/livez"} {
		resp, err := (&http.Client{Timeout: 3 * time.Second}).Get("http://127.0.0.1:10256" + path)
		require.NoError(t, err, "node proxy health %s", path)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, 200, resp.StatusCode, "%s: %s", path, b)
		assert.Contains(t, string(b), `"healthy":true`)
	}

	// externalTrafficPolicy Cluster: the API server takes the port back and
	// the agent closes it.
	svc, err = c.cs.CoreV1().Services(ns).Get(ctxT(t, 10*time.Second), "echo-hc", metav1.GetOptions{})
	require.NoError(t, err)
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	svc.Spec.HealthCheckNodePort = 0
	_, err = c.cs.CoreV1().Services(ns).Update(ctxT(t, 10*time.Second), svc, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		r := getHC(nil, host)
		return r.err != nil && strings.Contains(r.err.Error(), "connection refused")
	}, 60*time.Second, 250*time.Millisecond, "health-check port closed after eTP=Cluster")
}
