package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// ErrTracingPolicyNotFound is returned for a tracing policy the agent does
// not hold.
var ErrTracingPolicyNotFound = errors.New("tracing policy not found")

// ClusterScope stands for "no namespace" in /v1/tracingpolicies/{namespace}/
// {name} paths: the cluster-scoped SluiceTracingPolicy.
const ClusterScope = "-"

// TracingPolicyMode is the body of PUT /v1/tracingpolicies/{namespace}/
// {name}/mode.
type TracingPolicyMode struct {
	Mode string `json:"mode"` // enforce, monitor
}

func tracingPolicyPath(namespace, name string) string {
	if namespace == "" {
		namespace = ClusterScope
	}
	return "/v1/tracingpolicies/" + url.PathEscape(namespace) + "/" + url.PathEscape(name)
}

// TracingPolicies lists the agent's tracing policies.
func (c *Client) TracingPolicies(ctx context.Context) ([]TracingPolicy, error) {
	var out []TracingPolicy
	err := c.do(ctx, http.MethodGet, "/v1/tracingpolicies", nil, &out)
	return out, err
}

// TracingPolicy returns one tracing policy (namespace "" for the
// cluster-scoped kind), or ErrTracingPolicyNotFound.
func (c *Client) TracingPolicy(ctx context.Context, namespace, name string) (TracingPolicy, error) {
	var out TracingPolicy
	err := c.do(ctx, http.MethodGet, tracingPolicyPath(namespace, name), nil, &out)
	return out, tracingNotFound(err, namespace, name)
}

// SetTracingPolicyMode sets a policy's mode until the object's own mode
// changes and returns the policy.
func (c *Client) SetTracingPolicyMode(ctx context.Context, namespace, name, mode string) (TracingPolicy, error) {
	var out TracingPolicy
	err := c.do(ctx, http.MethodPut, tracingPolicyPath(namespace, name)+"/mode", TracingPolicyMode{Mode: mode}, &out)
	return out, tracingNotFound(err, namespace, name)
}

func tracingNotFound(err error, namespace, name string) error {
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	if namespace != "" {
		name = namespace + "/" + name
	}
	return fmt.Errorf("%w: %s", ErrTracingPolicyNotFound, name)
}

// TracingRuleEntries counts the entries of each kernel map of the tracing
// policies' rules, by "table.map" (exec.slots, syscall.nrs, class.procs,
// connect.dests, ...): what the policies hold in the kernel right now, read
// from the maps. With no policy every count is 0.
type TracingRuleEntries map[string]int

// TracingRuleEntries returns the kernel's rule map entry counts.
func (c *Client) TracingRuleEntries(ctx context.Context) (TracingRuleEntries, error) {
	var out TracingRuleEntries
	err := c.do(ctx, http.MethodGet, "/v1/tracingrules", nil, &out)
	return out, err
}
