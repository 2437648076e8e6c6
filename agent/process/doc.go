// Package process keeps the agent's view of the processes on the node: a
// cache fed by the process sensor (datapath/procsensor) and seeded from the
// processes running at start, the association of each process with the pod
// it runs in (network namespace of an endpoint the CNI wired; in Kubernetes
// mode also the pod UID and container id of its cgroup), and the manager
// that turns sensor events into api.ProcessEvent values with the process,
// its parent and ancestors, and remembers which process opened which
// connection so flows can name it.
package process
