package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/test/harness"
)

// promPort is where the test's Prometheus listens: 127.0.0.1 of the test's
// own node network namespace, so no other process can hold it.
const promPort = 19090

// prometheus is a Prometheus server the test started inside a node's
// network namespace, and an HTTP client that reaches it there.
type prometheus struct {
	base   string
	client *http.Client
}

// startPrometheus runs Debian's prometheus in node's network namespace,
// scraping the agent's /metrics (127.0.0.1:9962 there) every second as job
// sluice-agent and evaluating the chart's rules; its data directory is the
// test's, and it is stopped by PID in cleanup.
func startPrometheus(t *testing.T, node *harness.Node) *prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	require.NoError(t, err, "prometheus (Debian's package; hack/install-deps.sh)")
	rules, err := filepath.Abs(rulesFile)
	require.NoError(t, err)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
- job_name: sluice-agent
  static_configs: [{targets: ["127.0.0.1:9962"]}]
`, rules)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600))
	logPath := filepath.Join(dir, "prometheus.log")
	logf, err := os.Create(logPath)
	require.NoError(t, err)
	defer logf.Close()
	addr := fmt.Sprintf("127.0.0.1:%d", promPort)
	cmd := node.NS.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		harness.StopProcess(cmd, done)
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("prometheus log:\n%s", b)
		}
	})
	p := &prometheus{base: "http://" + addr, client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return harness.Dial(node.NS, "tcp4", "", addr, time.Second)
		},
	}}}
	require.Eventually(t, func() bool {
		resp, err := p.client.Get(p.base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 200*time.Millisecond, "prometheus ready")
	return p
}

// promSeries is one series of an instant query's vector.
type promSeries struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// api GETs an HTTP API path of Prometheus and decodes its data into out;
// an error is the API's ("bad_data" for an expression that does not parse).
func (p *prometheus) api(path string, q url.Values, out any) error {
	resp, err := p.client.Get(p.base + path + "?" + q.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status    string          `json:"status"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("%s: %s", body.ErrorType, body.Error)
	}
	return json.Unmarshal(body.Data, out)
}

// query evaluates expr now; the result must be a vector.
func (p *prometheus) query(expr string) ([]promSeries, error) {
	var data struct {
		ResultType string       `json:"resultType"`
		Result     []promSeries `json:"result"`
	}
	if err := p.api("/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("result type %s, not vector", data.ResultType)
	}
	return data.Result, nil
}

// comparison is a binary comparison operator between spaces (label
// matchers in the rules are written without spaces).
var comparison = regexp.MustCompile(` (==|!=|>=|<=|>|<) `)

// alertSignal turns an alert expression's comparisons into bool ones: the
// result holds every series the alert compares, firing or not. An absence
// alert (A unless B: series of A that B lacks) watches A's series.
func alertSignal(expr string) string {
	if a, _, ok := strings.Cut(expr, " unless "); ok {
		return a
	}
	return comparison.ReplaceAllString(expr, " $1 bool ")
}

// dashboardQueries returns every panel target's expression of the chart's
// dashboards by "dashboard / panel", Grafana's variables replaced: every
// node, a one-minute rate window.
func dashboardQueries(t *testing.T) map[string][]string {
	t.Helper()
	files, err := filepath.Glob(dashboardFiles)
	require.NoError(t, err)
	require.NotEmpty(t, files)
	vars := strings.NewReplacer("$__rate_interval", "1m", "$instance", ".*")
	out := map[string][]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		var d struct {
			Title  string `json:"title"`
			Panels []struct {
				Type    string `json:"type"`
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		require.NoError(t, json.Unmarshal(b, &d), f)
		for _, p := range d.Panels {
			if p.Type == "row" {
				continue
			}
			require.NotEmpty(t, p.Targets, "%s / %s has no query", d.Title, p.Title)
			for _, tg := range p.Targets {
				out[d.Title+" / "+p.Title] = append(out[d.Title+" / "+p.Title], vars.Replace(tg.Expr))
			}
		}
	}
	return out
}

// webPolicy lets pods labelled app=client reach web; the others are denied
// (default deny once the policy selects web).
const webPolicy = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-from-client
  namespace: default
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: client}}}]
`

// The real check of the chart's dashboards and alerts: Debian's Prometheus
// scrapes a real agent carrying allowed, denied and service traffic,
// process events and a tracing policy's events; every panel's query and
// every alert's expression must parse and evaluate, every panel's query
// must return series, and so must every alert's compared signal; the rules
// evaluate without error and none fires on this healthy node.
func TestPrivilegedPrometheusDashboardsAndAlerts(t *testing.T) {
	harness.RequirePrivileged(t)
	node := harness.NewNode(t, harness.NodeOptions{})
	node.StartAgentWith(t, harness.AgentOptions{Args: []string{"--process-sensor", "--process-rate-limit=20"}})
	prom := startPrometheus(t, node)
	client, intruder, web := node.AddPod(t, "client"), node.AddPod(t, "intruder"), node.AddPod(t, "web")
	servePods(t, web)
	// intruder is labelled app=locked: the tracing policy selects it.
	writeManifest(t, node, "pods.yaml", podYAML(client, "client")+podYAML(intruder, "locked")+podYAML(web, "web"))
	writeManifest(t, node, "web.yaml", serviceYAML("web", vip, ""))
	writeManifest(t, node, "policy.yaml", webPolicy)
	nc := copyBinary(t, "/usr/bin/touch", "nc")
	writeManifest(t, node, "no-nc.yaml", tracingPolicyYAML("no-nc", nc, "monitor"))
	waitBackends(t, node, fmt.Sprintf("%s:%d", vip, svcPort), 1)
	require.Eventually(t, func() bool {
		_, err := harness.Ask(intruder.NS, web.Addr(podPort), 300*time.Millisecond)
		return err != nil
	}, 10*time.Second, 100*time.Millisecond, "the policy denies intruder → web")
	// A burst of execs above the rate limit: process events of every type
	// and some dropped by the limit.
	sh, tru := copyBinary(t, "/bin/bash", "sh"), copyBinary(t, "/bin/true", "true")
	out, err := intruder.NS.Command(sh, "-c", "for i in $(seq 100); do "+tru+"; done").CombinedOutput()
	require.NoError(t, err, "%s", out)

	panels := dashboardQueries(t)
	alerts := alertRules(t)
	// Traffic rounds until every query has had a few scrapes to return
	// series from (or a minute passed).
	pending := func() []string {
		var missing []string
		for name, exprs := range panels {
			for _, e := range exprs {
				if r, err := prom.query(e); err != nil || len(r) == 0 {
					missing = append(missing, name)
				}
			}
		}
		for name, e := range alerts {
			if r, err := prom.query(alertSignal(e)); err != nil || len(r) == 0 {
				missing = append(missing, name)
			}
		}
		return missing
	}
	var missing []string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		requireReply(t, client.NS, web.Addr(podPort), "web")
		requireReply(t, client.NS, fmt.Sprintf("%s:%d", vip, svcPort), "web")
		_, err := harness.Ask(intruder.NS, web.Addr(podPort), 200*time.Millisecond)
		require.Error(t, err, "intruder → web denied")
		_, ran := runMarked(t, intruder, nc)
		require.True(t, ran, "monitor mode: nc runs, its exec is reported")
		if missing = pending(); len(missing) == 0 {
			break
		}
	}

	queries, series := 0, 0
	for name, exprs := range panels {
		for _, e := range exprs {
			r, err := prom.query(e)
			queries++
			series += len(r)
			if assert.NoError(t, err, "panel %s: %s", name, e) {
				assert.NotEmpty(t, r, "panel %s: %s returns no series", name, e)
			}
			t.Logf("panel %-55s %2d series  %s", name, len(r), e)
		}
	}
	for name, e := range alerts {
		_, err := prom.query(e)
		assert.NoError(t, err, "alert %s: %s", name, e)
		sig := alertSignal(e)
		require.NotEqual(t, e, sig, "alert %s compares", name)
		r, err := prom.query(sig)
		queries += 2
		series += len(r)
		if assert.NoError(t, err, "alert %s: %s", name, sig) {
			assert.NotEmpty(t, r, "alert %s: %s returns no series", name, sig)
		}
		t.Logf("alert %-20s %2d series  %s", name, len(r), sig)
	}
	t.Logf("%d queries (%d panels, %d alerts), %d series; still missing after the wait: %v", queries, len(panels), len(alerts), series, missing)

	// What the demo traffic must show: the allowed flows by their rule, the
	// denied ones dropped, and the agent up.
	byRule, err := prom.query(`sum by (rule, verdict) (sluice_policy_rule_verdicts_total)`)
	require.NoError(t, err)
	var allowedByRule, dropped bool
	for _, s := range byRule {
		allowedByRule = allowedByRule || (strings.Contains(s.Metric["rule"], "web-from-client") && s.Metric["verdict"] == "FORWARDED")
		dropped = dropped || s.Metric["verdict"] == "DROPPED"
	}
	assert.True(t, allowedByRule, "flows forwarded by web-from-client: %+v", byRule)
	assert.True(t, dropped, "dropped flows: %+v", byRule)
	tracing, err := prom.query(`sluice_tracingpolicy_events_total{policy="no-nc",action="would_sigkill"}`)
	require.NoError(t, err)
	assert.Len(t, tracing, 1, "the tracing policy's would-be kills")
	up, err := prom.query(`up{job="sluice-agent"}`)
	require.NoError(t, err)
	require.Len(t, up, 1)
	assert.Equal(t, "1", up[0].Value[1])

	// Prometheus evaluates every rule without error; none fires.
	var rules struct {
		Groups []struct {
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
				State     string `json:"state"`
			} `json:"rules"`
		} `json:"groups"`
	}
	require.NoError(t, prom.api("/api/v1/rules", nil, &rules))
	evaluated := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			evaluated++
			assert.Equal(t, "ok", r.Health, "rule %s: %s", r.Name, r.LastError)
			// Pending is possible (a transient reconcile error while the
			// demo's objects arrive); firing is not.
			assert.NotEqual(t, "firing", r.State, "rule %s on a healthy node", r.Name)
			t.Logf("rule %-24s health %s, %s", r.Name, r.Health, r.State)
		}
	}
	assert.Equal(t, len(alerts), evaluated, "Prometheus loaded every alert")
}
