package api

import (
	"context"
	"net/http"
	"net/url"
)

// PolicyStatus lists every policy object with whether it was accepted.
func (c *Client) PolicyStatus(ctx context.Context) ([]PolicyStatus, error) {
	var out []PolicyStatus
	err := c.do(ctx, http.MethodGet, "/v1/policy/status", nil, &out)
	return out, err
}

// EndpointPolicy returns an endpoint's resolved policy, or ErrNotFound.
func (c *Client) EndpointPolicy(ctx context.Context, containerID, ifName string) (EndpointPolicy, error) {
	var out EndpointPolicy
	err := c.do(ctx, http.MethodGet, "/v1/policy/endpoint/"+url.PathEscape(containerID)+"/"+url.PathEscape(ifName), nil, &out)
	return out, err
}

// Identities lists the known security identities.
func (c *Client) Identities(ctx context.Context) ([]Identity, error) {
	var out []Identity
	err := c.do(ctx, http.MethodGet, "/v1/identities", nil, &out)
	return out, err
}

// Flows calls fn with every flow the filter selects: the history, then with
// f.Follow new flows until ctx ends or fn returns an error.
func (c *Client) Flows(ctx context.Context, f FlowFilter, fn func(Flow) error) error {
	return stream(ctx, c, "/v1/flows", f.Query(), "flow", fn)
}
