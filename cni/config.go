package cni

import (
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/utils"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/datapath/pin"
)

// Defaults of the netconf fields.
const (
	DefaultRunDir = "/var/run/sluice"
	// DefaultMTU is the pod MTU when neither the network config nor the
	// agent (GET /v1/config) gives one.
	DefaultMTU = 1500
	// DefaultBPFRoot is where sluice-agent pins its programs.
	DefaultBPFRoot = pin.DefaultRoot
)

// Bounds of an IPv4 interface MTU.
const (
	minMTU = 68
	maxMTU = 65535
)

// NetConf is the plugin's entry of a conflist (type "sluice-cni").
type NetConf struct {
	types.PluginConf

	// RunDir holds the agent socket (<runDir>/agent.sock) and the delete
	// queue (<runDir>/delete-queue/).
	RunDir string `json:"runDir,omitempty"`
	// BPFRoot is the bpffs directory the agent pins programs and links under.
	BPFRoot string `json:"bpfRoot,omitempty"`
	// MTU of both ends of the veth pair. When it is unset (0) the plugin
	// asks the agent (its pod MTU, which fits the tunnel in VXLAN mode),
	// and uses DefaultMTU if the agent does not say.
	MTU int `json:"mtu,omitempty"`
	// LogFile receives the plugin's logs; without it only warnings go to stderr.
	LogFile string `json:"logFile,omitempty"`

	// RuntimeConfig is what the runtime passes for the capabilities the
	// conflist declares ("capabilities": {"portMappings": true}).
	RuntimeConfig RuntimeConfig `json:"runtimeConfig,omitempty"`
}

// RuntimeConfig holds the capability arguments the plugin understands.
type RuntimeConfig struct {
	// PortMappings are the pod's hostPorts (the portmap plugin's
	// capability): the agent serves them in BPF.
	PortMappings []api.PortMapping `json:"portMappings,omitempty"`
}

// portMappings validates the runtime's port mappings (an invalid one is a
// configuration error, before anything is allocated).
func (c *NetConf) portMappings() ([]api.PortMapping, error) {
	pms := c.RuntimeConfig.PortMappings
	if err := api.ValidatePortMappings(pms); err != nil {
		return nil, invalidConf("runtimeConfig: %v", err)
	}
	return pms, nil
}

// ipamConf is the part of the ipam section the plugin reads itself (GC).
type ipamConf struct {
	Type    string `json:"type"`
	DataDir string `json:"dataDir,omitempty"`
}

// K8sArgs are the CNI_ARGS the plugin understands; others are ignored.
type K8sArgs struct {
	types.CommonArgs
	K8S_POD_NAMESPACE          types.UnmarshallableString //nolint:revive,stylecheck // CNI_ARGS key
	K8S_POD_NAME               types.UnmarshallableString //nolint:revive,stylecheck // CNI_ARGS key
	K8S_POD_INFRA_CONTAINER_ID types.UnmarshallableString //nolint:revive,stylecheck // CNI_ARGS key
	K8S_POD_UID                types.UnmarshallableString //nolint:revive,stylecheck // CNI_ARGS key
}

// SocketPath returns the agent's unix socket.
func (c *NetConf) SocketPath() string { return filepath.Join(c.RunDir, "agent.sock") }

// DeleteQueueDir returns the directory of queued endpoint deletions.
func (c *NetConf) DeleteQueueDir() string { return DeleteQueueDir(c.RunDir) }

// DeleteQueueDir returns the directory of queued endpoint deletions under runDir.
func DeleteQueueDir(runDir string) string { return filepath.Join(runDir, "delete-queue") }

// ParseConfig decodes and validates stdin data, filling defaults (not the
// MTU: see NetConf.MTU). Errors are *types.Error with ErrDecodingFailure or
// ErrInvalidNetworkConfig.
func ParseConfig(data []byte) (*NetConf, error) {
	conf := &NetConf{}
	if len(data) == 0 {
		return nil, types.NewError(types.ErrDecodingFailure, "sluice-cni: empty network configuration on stdin", "")
	}
	if err := json.Unmarshal(data, conf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "sluice-cni: cannot decode network configuration", err.Error())
	}
	if conf.RunDir == "" {
		conf.RunDir = DefaultRunDir
	}
	if conf.BPFRoot == "" {
		conf.BPFRoot = DefaultBPFRoot
	}
	if err := conf.validate(); err != nil {
		return nil, err
	}
	return conf, nil
}

func invalidConf(format string, a ...any) *types.Error {
	return types.NewError(types.ErrInvalidNetworkConfig, "sluice-cni: "+fmt.Sprintf(format, a...), "")
}

func (c *NetConf) validate() *types.Error {
	switch {
	case c.Name == "":
		return invalidConf(`network "name" is required`)
	case c.IPAM.Type == "":
		return invalidConf(`"ipam" with a "type" is required (e.g. {"type":"host-local","ranges":[[{"subnet":"<node PodCIDR>"}]]})`)
	case c.MTU != 0 && (c.MTU < minMTU || c.MTU > maxMTU):
		return invalidConf(`"mtu" %d is out of range (68-65535)`, c.MTU)
	case !filepath.IsAbs(c.RunDir):
		return invalidConf(`"runDir" %q must be an absolute path`, c.RunDir)
	case !filepath.IsAbs(c.BPFRoot):
		return invalidConf(`"bpfRoot" %q must be an absolute path`, c.BPFRoot)
	case c.LogFile != "" && !filepath.IsAbs(c.LogFile):
		return invalidConf(`"logFile" %q must be an absolute path`, c.LogFile)
	}
	if err := utils.ValidateNetworkName(c.Name); err != nil {
		return invalidConf("network name %q: %s", c.Name, err.Msg)
	}
	return nil
}

// ipam decodes the ipam section's type and data directory.
func (c *NetConf) ipam(data []byte) (ipamConf, error) {
	var raw struct {
		IPAM ipamConf `json:"ipam"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return ipamConf{}, types.NewError(types.ErrDecodingFailure, "sluice-cni: cannot decode ipam section", err.Error())
	}
	return raw.IPAM, nil
}

// validateArgs checks the CNI environment the command needs.
func validateArgs(args *skel.CmdArgs, needNetns bool) error {
	if err := utils.ValidateContainerID(args.ContainerID); err != nil {
		return types.NewError(err.Code, "sluice-cni: CNI_CONTAINERID: "+err.Msg, err.Details)
	}
	if err := utils.ValidateInterfaceName(args.IfName); err != nil {
		return types.NewError(err.Code, "sluice-cni: CNI_IFNAME: "+err.Msg, err.Details)
	}
	if needNetns && args.Netns == "" {
		return types.NewError(types.ErrInvalidEnvironmentVariables, "sluice-cni: CNI_NETNS is required", "")
	}
	return nil
}

// parseK8sArgs reads the pod namespace and name from CNI_ARGS.
func parseK8sArgs(s string) (*K8sArgs, error) {
	a := &K8sArgs{}
	a.IgnoreUnknown = true
	if err := types.LoadArgs(s, a); err != nil {
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, "sluice-cni: cannot parse CNI_ARGS", err.Error())
	}
	return a, nil
}
