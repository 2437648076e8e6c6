// Package harness builds the test topologies every Sluice integration test
// uses: network namespaces, a simulated node (a netns with no uplink, its own
// private bpffs and its own cgroup v2 directory), the real sluice-agent
// running in it, and pods wired by executing the real sluice-cni binary the
// way a container runtime does (libcni). Everything it creates is removed with
// t.Cleanup, also when a test fails. While tests run, the pod and service
// CIDRs are blackholed in the host's netns so nothing can leave the machine.
package harness
