// Package procsensor loads the process-tracing sensor (bpf/process.c): BTF
// raw tracepoints on exec, exit and fork and the TCP state tracepoint, whose
// events leave through a ring buffer, and decodes those events.
package procsensor
