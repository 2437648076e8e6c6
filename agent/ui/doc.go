// Package ui is the service map of `sluice ui`: it follows the agent's
// flows, aggregates them into a graph of who talks to whom (workloads and
// services grouped by namespace, world and host as their own nodes, edges
// counted and coloured by verdict), and serves that graph, the flows with
// the `sluice observe` filters and a pod's process events as JSON, with a
// page (plain HTML, CSS and JavaScript embedded in the binary, no build
// step, nothing loaded from elsewhere) that draws them as SVG.
package ui
