// Package flows is the agent's flow observer: it reads the datapath's flow
// events, names their pods, identities and rules, keeps the last N flows in
// a ring, fans them out to followers (agent/server streams them as GET
// /v1/flows?follow=true for `sluice observe -f`) and counts policy verdicts
// for Prometheus.
package flows
