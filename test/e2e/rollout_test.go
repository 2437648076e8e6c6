package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
)

// TestE2EAgentRolloutUnderLoad: connection-rate load through a ClusterIP
// (every reply checked for its backend's name) and three long-lived
// connections through the same ClusterIP keep working while the agent's
// DaemonSet rolls out to a new image and back: not one failed transaction,
// not one broken stream. The new image is the running one under a second tag
// (imported into the node's containerd), so the rollout replaces the pod
// exactly as an upgrade does.
func TestE2EAgentRolloutUnderLoad(t *testing.T) {
	c := connect(t)
	ns := c.namespace(t)
	sel := map[string]string{"app": "rollout-echo"}
	backends := []string{"backend-1", "backend-2"}
	for _, b := range backends {
		c.echoPod(t, ns, b, sel)
	}
	client := c.echoPod(t, ns, "client", nil)
	svc, err := c.cs.CoreV1().Services(ns).Create(ctxT(t, 30*time.Second), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec: corev1.ServiceSpec{Selector: sel, Ports: []corev1.ServicePort{
			{Name: "tcp", Port: 80, TargetPort: intstr.FromInt32(9000), Protocol: corev1.ProtocolTCP},
		}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	addr := svc.Spec.ClusterIP + ":80"
	requireAllBackends(t, "tcp "+addr, "svc", backends, func() (string, error) { return c.ask(t, client, "tcp", addr, "svc") })

	load := c.startCRR(t, client, addr)
	var streams []*stream
	for i := range 3 {
		streams = append(streams, c.openStream(t, client, addr, fmt.Sprintf("stream-%d", i)))
	}
	talk := func(phase string) {
		for _, s := range streams {
			s.roundTrip(t, phase, backends)
		}
	}
	talk("before")

	ds, err := c.cs.AppsV1().DaemonSets("kube-system").Get(ctxT(t, 10*time.Second), "sluice-agent", metav1.GetOptions{})
	require.NoError(t, err)
	orig := ds.Spec.Template.Spec.Containers[0].Image
	require.NotContains(t, orig, "@", "the agent image is pinned by digest: cannot re-tag it")
	next := orig + "-rollout" // the same image under a second tag (sluice.local/sluice:dev-rollout)
	ctr := func(args ...string) {
		sock := filepath.Join(filepath.Dir(filepath.Dir(defaultKubeconfig)), "containerd.sock")
		out, err := exec.Command("ctr", append([]string{"--address", envOr("SLUICE_CONTAINERD_SOCKET", sock), "-n", "k8s.io", "images"}, args...)...).CombinedOutput()
		require.NoError(t, err, "ctr images %v: %s", args, out)
	}
	ctr("tag", "--force", orig, next)
	t.Cleanup(func() { ctr("rm", next) })
	rollTo := func(image string) {
		t.Helper()
		start := time.Now()
		c.setAgentImage(t, image)
		err := wait.PollUntilContextTimeout(t.Context(), time.Second, 180*time.Second, true, func(ctx context.Context) (bool, error) {
			talk("during " + image)
			return c.agentRolledOut(ctx, image), nil
		})
		require.NoError(t, err, "the agent DaemonSet did not roll out to %s", image)
		t.Logf("rolled out to %s in %v", image, time.Since(start).Round(time.Second))
	}
	rolledBack := false
	t.Cleanup(func() {
		if !rolledBack {
			c.setAgentImage(t, orig)
		}
	})
	rollTo(next)
	talk("between")
	rollTo(orig)
	rolledBack = true
	for range 3 {
		talk("after")
	}
	time.Sleep(2 * time.Second) // load after the second rollout too
	res := load.stop(t)
	t.Logf("TCP_CRR through %s during two rollouts: %d transactions, %d failed, per backend %v", addr, res.Attempts, res.Failed, res.Backends)
	require.Zero(t, res.Failed, "failed transactions (first: %s)", res.FirstError)
	require.Greater(t, res.Attempts, 100, "too few transactions to mean anything")
	for _, b := range backends {
		require.Positive(t, res.Backends[b], "no transaction reached %s", b)
	}
}

// setAgentImage patches the agent DaemonSet's container image.
func (c *cluster) setAgentImage(t *testing.T, image string) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"agent","image":%q}]}}}}`, image)
	_, err := c.cs.AppsV1().DaemonSets("kube-system").Patch(ctxT(t, 30*time.Second), "sluice-agent", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	require.NoError(t, err)
}

// agentRolledOut reports whether the DaemonSet's every pod runs image and is
// ready, as `kubectl rollout status` waits for.
func (c *cluster) agentRolledOut(ctx context.Context, image string) bool {
	ds, err := c.cs.AppsV1().DaemonSets("kube-system").Get(ctx, "sluice-agent", metav1.GetOptions{})
	if err != nil || !dsDone(ds) {
		return false
	}
	pods, err := c.cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=sluice,app.kubernetes.io/component=agent"})
	if err != nil || len(pods.Items) == 0 {
		return false
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Spec.Containers[0].Image != image {
			return false
		}
		ready := false
		for _, cond := range p.Status.Conditions {
			ready = ready || (cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue)
		}
		if !ready {
			return false
		}
	}
	return true
}

func dsDone(ds *appsv1.DaemonSet) bool {
	s := ds.Status
	return s.ObservedGeneration >= ds.Generation && s.UpdatedNumberScheduled == s.DesiredNumberScheduled &&
		s.NumberAvailable == s.DesiredNumberScheduled && s.NumberUnavailable == 0
}

// crrLoad is `echo crr` running in a pod.
type crrLoad struct {
	in   io.WriteCloser
	out  *strings.Builder
	done chan error
}

func (c *cluster) startCRR(t *testing.T, pod *corev1.Pod, addr string) *crrLoad {
	t.Helper()
	inR, inW := io.Pipe()
	l := &crrLoad{in: inW, out: &strings.Builder{}, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(t.Context())
	go func() { l.done <- c.exec(ctx, pod, inR, l.out, "/echo", "crr", addr) }()
	t.Cleanup(func() { inW.Close(); cancel() })
	return l
}

// stop ends the load (stdin closed) and returns its tally.
func (l *crrLoad) stop(t *testing.T) crrResult {
	t.Helper()
	l.in.Close()
	select {
	case err := <-l.done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("echo crr did not finish within 30s of its stdin closing")
	}
	var res crrResult
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(l.out.String())), &res), "echo crr output %q", l.out.String())
	return res
}

// crrResult mirrors test/e2e/echo's summary.
type crrResult struct {
	Attempts   int            `json:"attempts"`
	Failed     int            `json:"failed"`
	FirstError string         `json:"first_error"`
	Backends   map[string]int `json:"backends"`
}

// stream is one `echo stream` connection driven line by line.
type stream struct {
	name    string
	in      io.WriteCloser
	lines   chan string
	backend string
	seq     int
}

func (c *cluster) openStream(t *testing.T, pod *corev1.Pod, addr, name string) *stream {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(t.Context())
	s := &stream{name: name, in: inW, lines: make(chan string, 16)}
	done := make(chan struct{})
	go func() {
		err := c.exec(ctx, pod, inR, outW, "/echo", "stream", addr)
		outW.CloseWithError(fmt.Errorf("stream exec ended: %v", err))
		close(done)
	}()
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		s.lines <- fmt.Sprintf("<stream ended: %v>", sc.Err())
		close(s.lines)
	}()
	t.Cleanup(func() { inW.Close(); cancel(); <-done })
	require.True(t, strings.HasPrefix(s.next(t), "connected "), "%s did not connect", name)
	return s
}

func (s *stream) next(t *testing.T) string {
	t.Helper()
	select {
	case l := <-s.lines:
		return l
	case <-time.After(15 * time.Second):
		t.Fatalf("%s: no reply within 15s", s.name)
		return ""
	}
}

// roundTrip sends one line and requires the echo from the same backend as
// every earlier reply on this connection.
func (s *stream) roundTrip(t *testing.T, phase string, backends []string) {
	t.Helper()
	s.seq++
	msg := fmt.Sprintf("%s-%s-%d", s.name, strings.ReplaceAll(phase, " ", "_"), s.seq)
	_, err := fmt.Fprintln(s.in, msg)
	require.NoError(t, err, "%s: write (%s)", s.name, phase)
	name, got, _ := strings.Cut(s.next(t), " ")
	require.Equal(t, msg, got, "%s: reply on the long-lived connection (%s) from %s", s.name, phase, name)
	require.Contains(t, backends, name)
	if s.backend == "" {
		s.backend = name
	}
	require.Equal(t, s.backend, name, "%s: the connection moved to another backend", s.name)
}
