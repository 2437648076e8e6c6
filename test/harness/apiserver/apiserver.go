// Package apiserver runs a real etcd and kube-apiserver in a simulated
// node's network namespace for the Kubernetes-mode integration tests. It is
// apart from package harness so that the Kubernetes client libraries (whose
// package initialisation opens files and starts goroutines) stay out of the
// test binaries that trace their own process's syscalls.
package apiserver

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/sluicenet/sluice/test/harness"
)

// K8sBinDirEnv names the directory with etcd and kube-apiserver (default
// DefaultK8sBinDir, where hack/k8s/build.sh puts them).
const K8sBinDirEnv = "SLUICE_K8S_BIN_DIR"

// DefaultK8sBinDir is hack/k8s/build.sh's binary cache.
const DefaultK8sBinDir = "/var/cache/sluice-k8s/bin"

// apiToken is the admin's bearer token (system:masters).
const apiToken = "sluice-test-admin"

// APIServer is a real etcd and kube-apiserver running in a network
// namespace (a simulated node's, so that its agent reaches it on
// 127.0.0.1:6443): the agent's Kubernetes mode against a real API server.
// The Sluice CRDs are installed. There is no controller manager, scheduler
// or kubelet: tests create Nodes and Pods themselves (pods are admitted
// without a service account).
type Server struct {
	// Kubeconfig is a kubeconfig file for processes inside the namespace.
	Kubeconfig string
	// Config reaches the API server from the test process (it dials
	// inside the namespace).
	Config *rest.Config
	Client kubernetes.Interface

	tb        harness.T
	ns        *harness.NetNS
	dir, path string
	args      []string
	apiserver *daemon // the running kube-apiserver (nil while stopped)
}

// Start starts etcd and kube-apiserver in ns, waits until the API
// server is ready and the CRDs of install/helm/sluice/crds are established.
// Both are stopped in cleanup. It fails tb when the binaries are missing
// (build them with hack/k8s/build.sh, or set SLUICE_K8S_BIN_DIR).
func Start(tb harness.T, ns *harness.NetNS) *Server {
	tb.Helper()
	return StartWithout(tb, ns)
}

// StartWithout is Start without the CRDs named in skip
// (e.g. "sluicetracingpolicies.sluice.io"), as on a cluster whose CRDs come
// from an earlier release; InstallCRDs adds them later.
func StartWithout(tb harness.T, ns *harness.NetNS, skip ...string) *Server {
	tb.Helper()
	bin := os.Getenv(K8sBinDirEnv)
	if bin == "" {
		bin = DefaultK8sBinDir
	}
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			tb.Fatalf("%s not in %s (run hack/k8s/build.sh or set %s): %v", b, bin, K8sBinDirEnv, err)
		}
	}
	dir := tb.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	keyFile, tokens := filepath.Join(dir, "sa.key"), filepath.Join(dir, "tokens.csv")
	writeFile(tb, keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	writeFile(tb, tokens, []byte(apiToken+",admin,admin,system:masters\n"))

	startDaemon(tb, ns, dir, filepath.Join(bin, "etcd"), "--name", "default", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "default=http://127.0.0.1:2380")
	a := &Server{Kubeconfig: filepath.Join(dir, "kubeconfig"), tb: tb, ns: ns, dir: dir,
		path: filepath.Join(bin, "kube-apiserver"), args: []string{"--etcd-servers=http://127.0.0.1:2379",
			"--advertise-address=127.0.0.1", "--bind-address=127.0.0.1", "--secure-port=6443",
			"--cert-dir=" + filepath.Join(dir, "certs"), "--token-auth-file=" + tokens, "--authorization-mode=AlwaysAllow",
			"--service-account-issuer=https://kubernetes.default.svc", "--service-account-key-file=" + keyFile,
			"--service-account-signing-key-file=" + keyFile, "--service-cluster-ip-range=10.96.0.0/16",
			"--disable-admission-plugins=ServiceAccount"}}
	// Started second, stopped first: it does not exit while etcd is away.
	a.apiserver = startDaemon(tb, ns, dir, a.path, a.args...)
	tb.Cleanup(func() {
		if a.apiserver != nil {
			a.apiserver.stop()
		}
		if tb.Failed() {
			tb.Logf("kube-apiserver log (tail):\n%s", tail(filepath.Join(dir, "kube-apiserver.log")))
		}
	})
	writeFile(tb, a.Kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: `+apiToken+`}}]
contexts: [{name: test, context: {cluster: test, user: admin}}]
current-context: test
`))
	a.Config = &rest.Config{
		Host: "https://127.0.0.1:6443", BearerToken: apiToken, TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return harness.Dial(ns, network, "", addr, 5*time.Second)
		},
	}
	if a.Client, err = kubernetes.NewForConfig(a.Config); err != nil {
		tb.Fatal(err)
	}
	a.waitReady(tb)
	a.installCRDs(tb, func(name string) bool { return !slices.Contains(skip, name) })
	return a
}

// waitReady waits up to 60 s for the API server's /readyz.
func (a *Server) waitReady(tb harness.T) {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := a.Client.CoreV1().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("kube-apiserver not ready after 60s: %v\n%s", err, tail(filepath.Join(a.dir, "kube-apiserver.log")))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// StopAPIServer stops kube-apiserver (etcd keeps running): clients see
// connection refused until StartAgain.
func (a *Server) StopAPIServer() {
	if a.apiserver != nil {
		a.apiserver.stop()
		a.apiserver = nil
	}
}

// StartAgain starts kube-apiserver again after StopAPIServer, with the
// same flags and certificates, and waits until it is ready.
func (a *Server) StartAgain(tb harness.T) {
	tb.Helper()
	if a.apiserver != nil {
		tb.Fatal("kube-apiserver is running")
	}
	a.apiserver = startDaemonNoCleanup(tb, a.ns, a.dir, a.path, a.args...)
	a.waitReady(tb)
}

// daemon is a process startDaemon started.
type daemon struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func (d *daemon) stop() { harness.StopProcess(d.cmd, d.done) }

// startDaemon runs path in ns with its output in dir/<name>.log; cleanup
// sends SIGTERM, then SIGKILL after 5s, and waits. The log is printed when
// tb failed.
func startDaemon(tb harness.T, ns *harness.NetNS, dir, path string, args ...string) *daemon {
	tb.Helper()
	d := startDaemonNoCleanup(tb, ns, dir, path, args...)
	name := filepath.Base(path)
	tb.Cleanup(func() {
		d.stop()
		if tb.Failed() {
			tb.Logf("%s log (tail):\n%s", name, tail(filepath.Join(dir, name+".log")))
		}
	})
	return d
}

// startDaemonNoCleanup is startDaemon whose caller stops the process; the
// log is appended to.
func startDaemonNoCleanup(tb harness.T, ns *harness.NetNS, dir, path string, args ...string) *daemon {
	tb.Helper()
	name := filepath.Base(path)
	logf, err := os.OpenFile(filepath.Join(dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	defer logf.Close()
	cmd := ns.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(d.done)
	}()
	return d
}

// InstallCRDs creates the chart's CRDs named (e.g.
// "sluicetracingpolicies.sluice.io") and waits until they are established.
func (a *Server) InstallCRDs(tb harness.T, names ...string) {
	tb.Helper()
	a.installCRDs(tb, func(name string) bool { return slices.Contains(names, name) })
}

// installCRDs creates the chart's CRDs whose name keep accepts.
func (a *Server) installCRDs(tb harness.T, keep func(name string) bool) {
	tb.Helper()
	root, err := harness.ModuleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "install/helm/sluice/crds/*.yaml"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no CRDs in install/helm/sluice/crds: %v", err)
	}
	cs, err := apiextensions.NewForConfig(a.Config)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(b, &crd); err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		if !keep(crd.Name) {
			continue
		}
		if _, err := cs.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, &crd, metav1.CreateOptions{}); err != nil {
			tb.Fatalf("create CRD %s: %v", crd.Name, err)
		}
		for !established(ctx, cs, crd.Name) {
			select {
			case <-ctx.Done():
				tb.Fatalf("CRD %s not established: %v", crd.Name, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

func established(ctx context.Context, cs apiextensions.Interface, name string) bool {
	crd, err := cs.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false
	}
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}

func writeFile(tb harness.T, path string, b []byte) {
	tb.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// tail returns the last 4 KiB of a log file.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}
