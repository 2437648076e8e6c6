// Package datapath loads and pins Sluice's BPF programs and hands out their
// maps. Load loads the pod, socket-LB and host device programs from
// datapath/bpfgen with one set of shared maps pinned under a bpffs root
// (adopting what an earlier agent pinned, entries and links included) and
// returns a Datapath whose accessors give each map family's handle:
//
//	LB()          lbmap       services, backends, reverse NAT, node addresses
//	Policy()      policymap   policy entries, address rules, per-endpoint enforcement
//	CT()          ctmap       conntrack and NodePort NAT tables
//	Endpoints()   endpointmap pods on this node
//	IPCache()     ipcachemap  prefix -> security identity
//	Metrics()     metricsmap  packet counters (and SockMetrics())
//	Flows()       monitor     flow event ring buffer
//	Devices()     device      host device attachment
//	SocketLB()    socklb      socket-LB cgroup attachment
//
// The datapath tree is the only one that imports cilium/ebpf.
package datapath
