package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// BinDirEnv names a directory holding prebuilt binaries (make test sets it).
const BinDirEnv = "SLUICE_BIN_DIR"

// Binaries the tests execute, by name.
var binaries = map[string]string{
	"sluice-cni":   "./cmd/sluice-cni",
	"sluice-agent": "./cmd/sluice-agent",
	"sluice":       "./cmd/sluice",
	"host-local":   "github.com/containernetworking/plugins/plugins/ipam/host-local",
	"crr":          "./test/bench/crr", // TCP_CRR client/server, also used as a socket-LB client
}

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// BinDir returns a directory with sluice-cni, sluice-agent, sluice and the
// host-local IPAM plugin: $SLUICE_BIN_DIR if set, otherwise they are built
// once per test process into the module's bin/ directory.
func BinDir(tb T) string {
	tb.Helper()
	binOnce.Do(func() {
		if d := os.Getenv(BinDirEnv); d != "" {
			binDir, binErr = filepath.Abs(d)
			return
		}
		binDir, binErr = buildBinaries()
	})
	if binErr != nil {
		tb.Fatalf("binaries: %v", binErr)
	}
	for name := range binaries {
		if _, err := os.Stat(filepath.Join(binDir, name)); err != nil {
			tb.Fatalf("binary %s missing in %s (run make): %v", name, binDir, err)
		}
	}
	return binDir
}

// Bin returns the path of one binary.
func Bin(tb T, name string) string { return filepath.Join(BinDir(tb), name) }

func buildBinaries() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	// Build into the module's bin/ (what `make build` fills), under a lock
	// so that test binaries of several packages do not build over each other.
	dir := filepath.Join(root, "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".build-lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", dir, err)
	}
	for name, pkg := range binaries {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %v: %s", pkg, err, out)
		}
	}
	return dir, nil
}

// ModuleRoot is the directory of the Sluice module's go.mod (go env
// GOMOD).
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the sluice module")
	}
	return filepath.Dir(mod), nil
}
