// Package hack holds the tests of the shell scripts in hack/ (the programs
// it holds are packages of their own, in subdirectories).
package hack

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// checkLog runs hack/check-test-log.sh mode on log and returns its exit code
// and output.
func checkLog(t *testing.T, mode, log string) (int, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "test.log")
	require.NoError(t, os.WriteFile(p, []byte(log), 0o644))
	out, err := exec.Command("./check-test-log.sh", mode, p).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	require.NoError(t, err, "%s", out)
	return 0, string(out)
}

func TestCheckTestLogPrivileged(t *testing.T) {
	for _, c := range []struct {
		name, log string
		rc        int
		want      string
	}{{
		name: "all passed",
		log: `=== RUN   TestPrivilegedA
=== RUN   TestPrivilegedA/sub
--- PASS: TestPrivilegedA (0.10s)
    --- PASS: TestPrivilegedA/sub (0.05s)
--- SKIP: TestUnitThing (0.00s)
    x_test.go:3: not privileged, not gated
--- PASS: TestPrivilegedB (0.10s)
ok  	example.com/p	0.2s
`,
		want: "privileged tests: 2 passed, 0 failed, 0 skipped; subtests: 1 passed, 0 failed, 0 skipped",
	}, {
		name: "a subtest skipped",
		// go test -v: log lines under the test's === line, subtests' results with the parent's
		log: `=== RUN   TestPrivilegedA
=== RUN   TestPrivilegedA/one
=== RUN   TestPrivilegedA/two
    a_test.go:9: no reason that counts
=== RUN   TestPrivilegedA/three
=== PAUSE TestPrivilegedA/three
=== CONT  TestPrivilegedA/three
    a_test.go:12: parallel, skipped too
--- PASS: TestPrivilegedA (0.10s)
    --- PASS: TestPrivilegedA/one (0.05s)
    --- SKIP: TestPrivilegedA/two (0.00s)
    --- SKIP: TestPrivilegedA/three (0.00s)
`,
		rc:   1,
		want: "2 TestPrivileged* tests or subtests were skipped:\n--- SKIP: TestPrivilegedA/two\n    a_test.go:9: no reason that counts\n--- SKIP: TestPrivilegedA/three\n    a_test.go:12: parallel, skipped too\n",
	}, {
		name: "all skipped",
		log: `=== RUN   TestPrivilegedA
    privileged.go:16: privileged test: set SLUICE_PRIVILEGED_TESTS=1 and run as root
--- SKIP: TestPrivilegedA (0.00s)
=== RUN   TestPrivilegedB
    privileged.go:16: privileged test: set SLUICE_PRIVILEGED_TESTS=1 and run as root
--- SKIP: TestPrivilegedB (0.00s)
`,
		rc:   1,
		want: "no TestPrivileged* test passed",
	}, {
		name: "none ran",
		log: `--- PASS: TestUnit (0.00s)
ok  	example.com/p	0.2s
`,
		rc:   1,
		want: "privileged tests: 0 passed, 0 failed, 0 skipped",
	}} {
		t.Run(c.name, func(t *testing.T) {
			rc, out := checkLog(t, "privileged", c.log)
			require.Equal(t, c.rc, rc, "%s", out)
			require.Contains(t, out, c.want)
		})
	}
}

func TestCheckTestLogE2E(t *testing.T) {
	rc, out := checkLog(t, "e2e", "--- PASS: TestE2EPodToPod (3.00s)\n    --- PASS: TestE2EPodToPod/a (1.00s)\n")
	require.Equal(t, 0, rc, "%s", out)

	// SLUICE_E2E unset: every test skipped.
	rc, out = checkLog(t, "e2e", `=== RUN   TestE2EPodToPod
    cluster_test.go:47: SLUICE_E2E=1 not set: needs the node of hack/local-cluster.sh up
--- SKIP: TestE2EPodToPod (0.00s)
PASS
ok  	github.com/sluicenet/sluice/test/e2e	0.1s
`)
	require.Equal(t, 1, rc, "%s", out)
	require.Contains(t, out, "no TestE2E* test passed")

	// Only tests of another family passed.
	rc, out = checkLog(t, "e2e", "--- PASS: TestPrivilegedA (1.00s)\n")
	require.Equal(t, 1, rc, "%s", out)

	rc, _ = checkLog(t, "bogus", "")
	require.Equal(t, 2, rc)
}
