// Package tracingmgr owns the agent's tracing policies (SluiceTracingPolicy
// and SluiceTracingPolicyNamespaced): it takes them from the state source's
// objects, compiles each (a rejected policy keeps its reason while the others
// keep working) into the rules of three kernel tables — the process
// sensor's exec rules (spec.execs) and syscall rules (spec.tracepoints), and
// the socket load balancer's connect rules (spec.connects) — and the binary
// classes their matchBinaries and matchParentBinaries filters test (one
// class per distinct entry, shared by every policy that has it). It
// allocates the slots of each table and the class ids across the accepted
// policies in a stable order (a policy that does not fit is refused whole),
// and scopes the rules of pod-selecting policies to the network namespaces
// of the selected pods' endpoints — or, for a policy with a
// containerSelector, to the cgroup v2 ids of the selected containers of
// those pods (Pod status names each container's id; CgroupFinder finds its
// cgroup), recomputed when a pod's status changes, so a restarted
// container's new cgroup takes over its predecessor's scope. It names and
// counts the policies' events for the process event pipeline (PolicyEvent,
// SyscallHook) and serves the tracingpolicy API (List, Get, SetMode).
package tracingmgr
