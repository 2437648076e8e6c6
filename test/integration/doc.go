// Package integration holds netns integration tests: simulated nodes running
// the real sluice-agent, pods wired by the real sluice-cni binary, and real
// traffic whose application replies name the pod that answered.
package integration
