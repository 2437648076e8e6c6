package manifests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/atomicfile"
	"github.com/sluicenet/sluice/agent/source"
)

// running is a watcher started by startWatcher.
type running struct {
	w       *Watcher
	hook    *test.Hook
	changes chan source.Snapshot
}

func startWatcher(t *testing.T, dir string, configure func(*Watcher)) *running {
	t.Helper()
	log, hook := test.NewNullLogger()
	log.SetLevel(logrus.DebugLevel)
	r := &running{w: New(dir, log), hook: hook, changes: make(chan source.Snapshot, 100)}
	if configure != nil {
		configure(r.w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.w.Run(ctx, func(s source.Snapshot) { r.changes <- s }) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return r
}

// next waits for the next callback.
func (r *running) next(t *testing.T) source.Snapshot {
	t.Helper()
	select {
	case s := <-r.changes:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no change reported")
		return source.Snapshot{}
	}
}

// quiet asserts that no callback comes for d.
func (r *running) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case s := <-r.changes:
		t.Fatalf("unexpected change: %+v", names(s))
	case <-time.After(d):
	}
}

// logged waits for a log entry at level whose message and fields contain all of want.
func (r *running) logged(t *testing.T, level logrus.Level, want ...string) *logrus.Entry {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, e := range r.hook.AllEntries() {
			text := e.Message + fmt.Sprint(e.Data)
			ok := e.Level == level
			for _, w := range want {
				ok = ok && strings.Contains(text, w)
			}
			if ok {
				return e
			}
		}
	}
	t.Fatalf("no %s log with %q; have %q", level, want, r.hookTexts())
	return nil
}

func (r *running) hookTexts() []string {
	var out []string
	for _, e := range r.hook.AllEntries() {
		out = append(out, e.Level.String()+": "+e.Message+" "+fmt.Sprint(e.Data))
	}
	return out
}

func write(t testing.TB, dir, name, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
}

// writeAtomic replaces name in dir with content through a renamed temporary
// file.
func writeAtomic(t testing.TB, dir, name, content string) {
	t.Helper()
	require.NoError(t, atomicfile.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
}

func svcYAML(name, clusterIP string, port int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %s
spec:
  clusterIP: %s
  ports: [{name: http, port: %d}]
`, name, clusterIP, port)
}

// names summarizes a snapshot as kind/namespace/name strings.
func names(s source.Snapshot) []string {
	var out []string
	for _, o := range s.Services {
		out = append(out, "Service/"+o.Namespace+"/"+o.Name)
	}
	for _, o := range s.EndpointSlices {
		out = append(out, "EndpointSlice/"+o.Namespace+"/"+o.Name)
	}
	for _, o := range s.Pods {
		out = append(out, "Pod/"+o.Namespace+"/"+o.Name)
	}
	for _, o := range s.Namespaces {
		out = append(out, "Namespace/"+o.Name)
	}
	for _, o := range s.Others {
		out = append(out, o.Kind+"/"+o.Namespace+"/"+o.Name)
	}
	return out
}

func TestWatcherInitialLoad(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "10-svc.yaml", svcYAML("web", "10.96.0.10", 80))
	write(t, dir, "20-multi.yml", `# leading comment
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [10.0.1.5]}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-a, namespace: shop, labels: {app: web}}
spec: {nodeName: node-a, containers: [{name: c, ports: [{name: web, containerPort: 8080}]}]}
---
---
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: a}}
`)
	write(t, dir, "30-policy.json", `{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
 "metadata": {"name": "deny", "namespace": "shop"}, "spec": {"podSelector": {}}}`)
	write(t, dir, "README.md", "not a manifest")
	write(t, dir, ".hidden.yaml", "{{{ not parsed")
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755))

	r := startWatcher(t, dir, nil)
	s := r.next(t)
	require.Equal(t, []string{
		"Service/default/web", "EndpointSlice/default/web-1", "Pod/shop/web-a", "Namespace/shop", "NetworkPolicy/shop/deny",
	}, names(s))
	require.Equal(t, "10.96.0.10", s.Services[0].Spec.ClusterIP)
	require.Equal(t, int32(8080), s.Pods[0].Spec.Containers[0].Ports[0].ContainerPort)
	require.Equal(t, "30-policy.json", s.Others[0].File)
	require.JSONEq(t, `{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"deny","namespace":"shop"},"spec":{"podSelector":{}}}`,
		string(s.Others[0].JSON))
	require.Equal(t, s, r.w.Snapshot())

	// Snapshots are copies: changing one does not change the watcher's.
	s.Services[0].Name = "changed"
	require.Equal(t, "web", r.w.Snapshot().Services[0].Name)
	for _, e := range r.hook.AllEntries() {
		require.Greater(t, e.Level, logrus.WarnLevel, "unexpected %s: %s %v", e.Level, e.Message, e.Data)
	}
}

func TestWatcherAddModifyDelete(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", svcYAML("a", "10.96.0.1", 80))
	r := startWatcher(t, dir, nil)
	require.Equal(t, []string{"Service/default/a"}, names(r.next(t)))

	write(t, dir, "b.yaml", svcYAML("b", "10.96.0.2", 80))
	require.Equal(t, []string{"Service/default/a", "Service/default/b"}, names(r.next(t)))

	// Same size, new content, within the mtime granularity of the last write.
	write(t, dir, "b.yaml", svcYAML("b", "10.96.0.2", 81))
	s := r.next(t)
	require.Equal(t, int32(81), s.Services[1].Spec.Ports[0].Port)

	require.NoError(t, os.Remove(filepath.Join(dir, "a.yaml")))
	require.Equal(t, []string{"Service/default/b"}, names(r.next(t)))
	require.Equal(t, []string{"Service/default/b"}, names(r.w.Snapshot()))

	// Renaming to a non-manifest name removes the objects too.
	require.NoError(t, os.Rename(filepath.Join(dir, "b.yaml"), filepath.Join(dir, "b.yaml.bak")))
	require.Empty(t, names(r.next(t)))
}

func TestWatcherBadFileKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "svc.yaml", svcYAML("web", "10.96.0.10", 80))
	r := startWatcher(t, dir, nil)
	require.Equal(t, []string{"Service/default/web"}, names(r.next(t)))

	// YAML syntax error on line 4 of the file.
	write(t, dir, "svc.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: [web\n")
	e := r.logged(t, logrus.ErrorLevel, "svc.yaml", "document 1 (line 1)", "line 4")
	require.Equal(t, "svc.yaml", e.Data["file"])
	r.quiet(t, 300*time.Millisecond)
	require.Equal(t, "10.96.0.10", r.w.Snapshot().Services[0].Spec.ClusterIP, "last good object kept")

	// A new file with an unknown field is rejected, naming the field; the rest keeps working.
	write(t, dir, "typo.yaml", svcYAML("other", "10.96.0.11", 80)+"  portz: []\n")
	r.logged(t, logrus.ErrorLevel, "typo.yaml", `unknown field "spec.portz"`)
	write(t, dir, "more.yaml", svcYAML("more", "10.96.0.12", 80))
	require.Equal(t, []string{"Service/default/more", "Service/default/web"}, names(r.next(t)))

	// Fixing the bad file applies its new content.
	write(t, dir, "svc.yaml", svcYAML("web", "10.96.0.20", 80))
	s := r.next(t)
	require.Equal(t, "10.96.0.20", s.Services[1].Spec.ClusterIP)

	// Deleting a bad file drops its last good objects too.
	write(t, dir, "svc.yaml", "kind: Service\n")
	r.logged(t, logrus.ErrorLevel, "svc.yaml", "apiVersion is missing")
	require.NoError(t, os.Remove(filepath.Join(dir, "svc.yaml")))
	require.Equal(t, []string{"Service/default/more"}, names(r.next(t)))
}

func TestWatcherLaterFileWins(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", svcYAML("web", "10.96.0.1", 80))
	write(t, dir, "b.yaml", svcYAML("web", "10.96.0.2", 80))
	r := startWatcher(t, dir, nil)
	s := r.next(t)
	require.Len(t, s.Services, 1)
	require.Equal(t, "10.96.0.2", s.Services[0].Spec.ClusterIP)
	e := r.logged(t, logrus.WarnLevel, "Service default/web")
	require.Equal(t, "b.yaml", e.Data["file"])
	require.Equal(t, "a.yaml", e.Data["overridden_file"])

	require.NoError(t, os.Remove(filepath.Join(dir, "b.yaml")))
	s = r.next(t)
	require.Equal(t, "10.96.0.1", s.Services[0].Spec.ClusterIP)
}

func TestWatcherDebounce(t *testing.T) {
	dir := t.TempDir()
	r := startWatcher(t, dir, nil)
	require.Empty(t, names(r.next(t)), "initial callback for an empty directory")

	for i := range 5 {
		write(t, dir, fmt.Sprintf("s%d.yaml", i), svcYAML(fmt.Sprintf("s%d", i), fmt.Sprintf("10.96.0.%d", i+1), 80))
		write(t, dir, fmt.Sprintf("s%d.yaml", i), svcYAML(fmt.Sprintf("s%d", i), fmt.Sprintf("10.96.0.%d", i+1), 81))
	}
	s := r.next(t)
	require.Len(t, s.Services, 5, "one callback for the whole burst")
	for _, svc := range s.Services {
		require.Equal(t, int32(81), svc.Spec.Ports[0].Port)
	}
	r.quiet(t, 5*DefaultDebounce)
}

// The changes are written as editors and kubectl do (a temporary file
// renamed over the old one), so the watcher never reads a half-written file:
// the parse counts are exact.
func TestWatcherReparsesOnlyChangedFiles(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a", "b", "c"} {
		write(t, dir, n+".yaml", svcYAML(n, "10.96.0.1", 80))
	}
	r := startWatcher(t, dir, func(w *Watcher) { w.rescan = 50 * time.Millisecond })
	r.next(t)
	require.Equal(t, 3, r.w.parses)

	writeAtomic(t, dir, "b.yaml", svcYAML("b", "10.96.0.9", 80))
	require.Equal(t, "10.96.0.9", r.next(t).Services[1].Spec.ClusterIP)
	require.Equal(t, 4, r.w.parses)

	// Touching a file or rewriting a comment-only change parses at most once
	// and reports nothing.
	future := time.Now().Add(time.Hour)
	require.NoError(t, os.Chtimes(filepath.Join(dir, "a.yaml"), future, future))
	writeAtomic(t, dir, "c.yaml", "# comment\n"+svcYAML("c", "10.96.0.1", 80))
	r.quiet(t, 500*time.Millisecond)
	writeAtomic(t, dir, "a.yaml", svcYAML("a", "10.96.0.7", 80))
	require.Equal(t, "10.96.0.7", r.next(t).Services[0].Spec.ClusterIP)
	require.Equal(t, 6, r.w.parses, "c.yaml (comment) and a.yaml (content) parsed once each")
}

func TestWatcherRescanWithoutInotify(t *testing.T) {
	dir := t.TempDir()
	r := startWatcher(t, dir, func(w *Watcher) {
		w.inotify = false
		w.rescan = 50 * time.Millisecond
	})
	r.next(t)
	write(t, dir, "a.yaml", svcYAML("a", "10.96.0.1", 80))
	require.Equal(t, []string{"Service/default/a"}, names(r.next(t)))
}

func TestWatcherMissingDir(t *testing.T) {
	w := New(filepath.Join(t.TempDir(), "nope"), logrus.New())
	err := w.Run(context.Background(), func(source.Snapshot) { t.Fatal("callback") })
	require.ErrorIs(t, err, os.ErrNotExist)
}
