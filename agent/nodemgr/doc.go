// Package nodemgr routes pod traffic between nodes: from the cluster's Node
// objects (name, PodCIDRs, InternalIP) it computes one route per remote
// PodCIDR and applies it with netlink in the agent's network namespace, from
// a single owner loop (agent/reconcile: idempotent replace, prune, periodic
// resync, retry with backoff).
//
// Modes:
//
//   - native: "ip route replace <podCIDR> via <nodeIP>": the underlay
//     carries pod addresses unchanged (nodes share an L2 segment or the
//     network routes PodCIDRs).
//   - vxlan: pod packets are encapsulated in VXLAN (UDP 8472) to the owning
//     node's IP. One collect-metadata ("external") device, sluice_vxlan, and
//     per remote PodCIDR a route with a lightweight-tunnel encap
//     ("encap ip id <VNI> dst <nodeIP>") via an onlink gateway (the PodCIDR's
//     network address) whose neighbor entry is permanent. The inner
//     destination MAC must be the receiver's device MAC (the kernel drops
//     other-host frames and frames carrying its own MAC as source), so each
//     node derives its device MAC from its node IP (0a:53:<IPv4>) and every
//     node can compute every other node's MAC without extra state. No BPF is
//     involved: from_container hands non-local traffic to the stack, whose
//     route does the encapsulation; the receiving device decapsulates and
//     the stack forwards to the pod's veth. Pods' traffic to the other
//     nodes' own IPs is tunnelled too (nodetunnel.go: routes in NodeTable,
//     a rule per local PodCIDR), so no pod source address crosses the
//     underlay.
//   - none: the manager removes its routes and the device (cleanup on
//     disable).
//
// MTU: ComputeMTUs derives pod and device MTUs from the MTU of the device
// holding the node IP (the underlay), as Cilium does: in VXLAN mode
// sluice_vxlan and pods get the underlay's MTU less VXLANOverhead (50), so
// pod packets fit the tunnel without path MTU discovery; otherwise pods get
// the underlay's MTU. An adopted sluice_vxlan with another MTU is updated.
//
// Routes carry the protocol number RouteProtocol, so a restarted agent
// adopts its routes (they stay while it is down) and prunes only its own.
package nodemgr
