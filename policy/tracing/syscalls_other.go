//go:build !amd64

package tracing

// syscallNumbers is empty on architectures without a generated table:
// every syscall name is unknown there, so syscall tracepoints are rejected.
var syscallNumbers = map[string]uint32{}
