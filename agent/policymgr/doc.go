// Package policymgr is the agent's policy manager. It takes policy objects
// from the state source (networking.k8s.io/v1 NetworkPolicy, sluice.io
// SluiceNetworkPolicy and SluiceClusterwideNetworkPolicy as raw JSON),
// validates and compiles them (a rejected policy is kept with its reason and
// nothing of it applies), feeds them with the endpoints and identities into
// a policy.Resolver, and is the one owner of the per-endpoint policy maps:
// it writes each endpoint's entries and enforcement config into the
// datapath with diffs, resyncs fully against the kernel periodically, and
// retries with backoff. It also keeps the rule ID table that names the rule
// behind every map entry and flow event.
package policymgr
