package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// screenshotDirEnv names the directory the browser test saves the
// service map's screenshot in (default: the test's temporary directory).
const screenshotDirEnv = "SLUICE_UI_SCREENSHOT_DIR"

// newBrowser starts headless Chromium (Debian's package) with a profile
// of the test's own. It reaches nothing but loopback: every other address
// goes to a proxy on 127.0.0.1 port 9 where nothing listens, and host
// names other than localhost resolve to nothing. The browser's process
// group is killed by its ID when the test ends.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	require.NoError(t, err, "the browser test needs Debian's chromium (hack/install-deps.sh installs it)")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, // root in the test runner
		chromedp.DisableGPU,
		chromedp.WindowSize(1400, 900),
		chromedp.ProxyServer("http://127.0.0.1:9"),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1"),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			if cmd.SysProcAttr == nil {
				cmd.SysProcAttr = &syscall.SysProcAttr{}
			}
			cmd.SysProcAttr.Setpgid = true
			cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
		}),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	_, err = chromedp.Run(ctx, chromedp.Evaluate[int]("1"))
	require.NoError(t, err, "start chromium")
	pid := chromedp.FromContext(ctx).Browser.Process().Pid
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		// The browser and its renderers are one process group of ours:
		// kill it and wait until none of it is left.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		for deadline := time.Now().Add(5 * time.Second); syscall.Kill(-pid, 0) == nil; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("chromium's process group %d outlived SIGKILL", pid)
				return
			}
		}
	})
	return ctx
}

// pageState is what the page shows, read from its DOM.
type pageState struct {
	Nodes     []string          `json:"nodes"`
	Edges     map[string]string `json:"edges"`  // "source -> target" → verdict
	Colors    map[string]string `json:"colors"` // "source -> target" → the stroke of its path
	Labels    map[string]string `json:"labels"` // "source -> target" → its count text
	Rows      []string          `json:"rows"`   // the verdict cell of each flow row
	Status    string            `json:"status"`
	Processes string            `json:"processes"`
	Resources []string          `json:"resources"` // every URL the page loaded
}

const readPage = `(() => {
  const key = g => g.dataset.source + " -> " + g.dataset.target;
  const s = {nodes: [], edges: {}, colors: {}, labels: {}, rows: [], resources: [location.href]};
  document.querySelectorAll("#graph g.node").forEach(g => s.nodes.push(g.dataset.id));
  document.querySelectorAll("#graph g.edge").forEach(g => {
    s.edges[key(g)] = g.dataset.verdict;
    s.colors[key(g)] = g.querySelector("path").getAttribute("stroke");
    s.labels[key(g)] = g.querySelector("text").textContent;
  });
  document.querySelectorAll("#flows tbody tr").forEach(r => s.rows.push(r.cells[4].textContent));
  s.status = document.getElementById("status").textContent;
  s.processes = document.getElementById("processes").textContent;
  performance.getEntriesByType("resource").forEach(e => s.resources.push(e.name));
  return s;
})()`

// waitPage reads the page until ok accepts it or 15 seconds pass.
func waitPage(t *testing.T, ctx context.Context, what string, ok func(pageState) bool) pageState {
	t.Helper()
	var s pageState
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		var err error
		s, err = chromedp.Run(ctx, chromedp.Evaluate[pageState](readPage))
		require.NoError(t, err)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page never showed %s: %+v", what, s)
		}
	}
}

// checkInBrowser opens the service map in Chromium and requires the SVG
// to draw the demo's nodes and edges in their verdict's colours, the flow
// table to follow the filters, and the process panel to show the
// client's probe; it saves a screenshot.
func (d *uiDemo) checkInBrowser(t *testing.T) {
	ctx := newBrowser(t)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(d.url+"/")))
	s := waitPage(t, ctx, "the demo's edges", func(s pageState) bool {
		for k, v := range d.wantEdges {
			if s.Edges[k[0]+" -> "+k[1]] != v {
				return false
			}
		}
		return true
	})
	assert.Subset(t, s.Nodes, d.wantNodes)
	assert.Equal(t, "live", s.Status)
	colors := map[string]string{}
	for k, v := range d.wantEdges {
		e := k[0] + " -> " + k[1]
		if colors[v] == "" {
			colors[v] = s.Colors[e]
		}
		assert.Equal(t, colors[v], s.Colors[e], "%s is drawn in its verdict's colour", e)
		assert.NotEmpty(t, s.Labels[e], "%s shows its counts", e)
	}
	assert.NotEqual(t, colors["FORWARDED"], colors["DROPPED"])
	assert.Contains(t, s.Labels["y/scanner -> x/web"], "drop")
	assert.Contains(t, s.Labels["x/client -> service:x/websvc"], "fwd")
	assert.NotEmpty(t, s.Rows)
	for _, r := range s.Resources {
		assert.True(t, strings.HasPrefix(r, d.url+"/"), "the page loads only from sluice ui: %s", r)
	}

	// Select the client: the process panel shows its probe.
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](
		`document.querySelector('#graph g.node[data-id="x/client"]').dispatchEvent(new MouseEvent("click", {bubbles: true}))`))
	require.NoError(t, err)
	waitPage(t, ctx, "the client's processes", func(s pageState) bool {
		return strings.Contains(s.Processes, "process x/client "+d.probe+" service-map")
	})
	d.screenshot(t, ctx)

	// The observe filters apply to the map and the table.
	_, err = chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
	  const f = document.getElementById("filters");
	  f.elements.verdict.value = "DROPPED";
	  return f.dispatchEvent(new Event("submit", {cancelable: true}));
	})()`))
	require.NoError(t, err)
	s = waitPage(t, ctx, "only dropped flows", func(s pageState) bool {
		if len(s.Edges) != 1 || len(s.Rows) == 0 {
			return false
		}
		for _, r := range s.Rows {
			if r != "DROPPED" {
				return false
			}
		}
		return true
	})
	assert.Equal(t, map[string]string{"y/scanner -> x/web": "DROPPED"}, s.Edges)
}

// screenshot saves the page as service-map.png in $SLUICE_UI_SCREENSHOT_DIR
// (default: the test's temporary directory).
func (d *uiDemo) screenshot(t *testing.T, ctx context.Context) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.True(t, len(png) > 8 && string(png[1:4]) == "PNG", "a PNG screenshot")
	dir := os.Getenv(screenshotDirEnv)
	if dir == "" {
		dir = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	path := filepath.Join(dir, "service-map.png")
	require.NoError(t, os.WriteFile(path, png, 0o644))
	t.Logf("screenshot of the service map: %s (%d bytes)", path, len(png))
}
