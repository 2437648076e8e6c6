package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// nsExec runs CNI plugins inside a simulated node's netns, as a container
// runtime on that node would run them in the host netns.
type nsExec struct {
	ns *NetNS
	version.PluginDecoder
}

var _ invoke.Exec = (*nsExec)(nil)

func (e *nsExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "nsenter", "--net="+e.ns.Path(), "--", pluginPath)
	cmd.Env = environ
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		// A plugin reports failures as a CNI error object on stdout.
		var cniErr types.Error
		if json.Unmarshal(stdout.Bytes(), &cniErr) == nil && cniErr.Code != 0 {
			return nil, &cniErr
		}
		return nil, fmt.Errorf("%s: %w (stdout %q, stderr %q)", pluginPath, err, stdout.String(), stderr.String())
	}
	return stdout.Bytes(), nil
}

func (e *nsExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}
