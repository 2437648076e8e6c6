package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://sluice-agent/v1/flows?"+f.Query().Encode(), nil)
	if err != nil {
		return err
	}
	// No overall timeout: a followed stream lasts until ctx ends.
	hc := &http.Client{Transport: c.hc.Transport}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w at %s: %v", ErrUnreachable, c.socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e Error
		if json.NewDecoder(resp.Body).Decode(&e) == nil && e.Error != "" {
			return fmt.Errorf("agent: %s", e.Error)
		}
		return fmt.Errorf("agent: GET /v1/flows: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var fl Flow
		if err := json.Unmarshal(sc.Bytes(), &fl); err != nil {
			return fmt.Errorf("decode flow: %w", err)
		}
		if err := fn(fl); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("read flows: %w", err)
	}
	return ctx.Err()
}
