package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// The chart's files the Prometheus checks read.
var (
	chartFiles     = filepath.Join("..", "..", "install", "helm", "sluice", "files")
	rulesFile      = filepath.Join(chartFiles, "prometheus", "rules.yaml")
	rulesTestFile  = filepath.Join("testdata", "prometheus", "rules_test.yaml")
	dashboardFiles = filepath.Join(chartFiles, "dashboards", "*.json")
)

// ruleFile is a Prometheus rule file (the PrometheusRule's spec).
type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert string `json:"alert"`
			Expr  string `json:"expr"`
		} `json:"rules"`
	} `json:"groups"`
}

// alertRules returns the alerts of the chart's rule file: name → expression.
func alertRules(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	require.NoError(t, err)
	var f ruleFile
	require.NoError(t, yaml.Unmarshal(b, &f))
	out := map[string]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out[r.Alert] = r.Expr
			}
		}
	}
	return out
}

// promtool runs Debian's promtool (hack/install-deps.sh installs it).
func promtool(t *testing.T, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	require.NoError(t, err, "promtool (Debian's prometheus package; hack/install-deps.sh)")
	out, err := exec.Command(path, args...).CombinedOutput()
	require.NoError(t, err, "promtool %v:\n%s", args, out)
	return string(out)
}

// The chart's alerts are valid rules (promtool check rules) and pass their
// unit tests (promtool test rules), in which every alert is expected to
// fire at least once and to stay silent at least once.
func TestPrometheusRules(t *testing.T) {
	alerts := alertRules(t)
	for _, name := range []string{"SluiceAgentDown", "SluiceDropsSpiking", "SluiceBPFMapNearlyFull",
		"SluiceReconcileErrors", "SluiceFlowEventsLost", "SluiceProcessEventsLost"} {
		assert.Contains(t, alerts, name)
	}
	out := promtool(t, "check", "rules", rulesFile)
	assert.Contains(t, out, "SUCCESS")
	t.Logf("promtool check rules:\n%s", out)

	b, err := os.ReadFile(rulesTestFile)
	require.NoError(t, err)
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	require.NoError(t, yaml.Unmarshal(b, &tests))
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	for name := range alerts {
		assert.True(t, fires[name], "a unit test where %s fires", name)
		assert.True(t, silent[name], "a unit test where %s does not fire", name)
	}
	out = promtool(t, "test", "rules", rulesTestFile)
	assert.Contains(t, out, "SUCCESS")
	t.Logf("promtool test rules:\n%s", out)
}
