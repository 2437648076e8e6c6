// Package tracingmgr owns the agent's tracing policies (SluiceTracingPolicy
// and SluiceTracingPolicyNamespaced): it takes them from the state source's
// objects, compiles each (a rejected policy keeps its reason while the others
// keep working), allocates the process sensor's exec rule slots across the
// accepted policies in a stable order, and scopes the rules of pod-selecting
// policies to the network namespaces of the selected pods' endpoints. It
// names and counts the policies' events for the process event pipeline
// (PolicyEvent) and serves the tracingpolicy API (List, Get, SetMode).
package tracingmgr
