// Package cni is the sluice-cni plugin: ADD, DEL, CHECK, STATUS and GC.
//
// ADD delegates IPAM (host-local over the node's PodCIDR), creates a veth
// pair whose host side is named deterministically from the attachment
// (HostVethName), configures the pod's interface with a /32 and a default
// route via the gateway, gives the host veth the gateway /32 and a host route
// to the pod, attaches the pinned pod programs with TCX (datapath/attach) and
// registers the endpoint with sluice-agent over its local API. It fails closed:
// without pinned programs or a reachable agent no pod is wired, and a failure
// at any step undoes every earlier one. The endpoint carries the pod's
// hostPorts, runtimeConfig.portMappings (the conflist declares the
// capability): the agent serves them in BPF, and refuses a port another pod
// holds.
//
// CHECK validates prevResult against the pod's interface, address and
// route, the attached programs and IPAM, and that the agent knows the
// endpoint with exactly the port mappings the runtime passes (a CNI result
// has no field for them).
//
// DEL is idempotent. When the agent cannot be reached, DEL queues the endpoint
// deletion as a file under <runDir>/delete-queue/ (package agent/deletequeue) for the
// agent to process when it starts, and succeeds.
//
// The plugin never compiles or loads BPF programs and never writes logs to
// stdout, which carries the CNI result.
package cni
