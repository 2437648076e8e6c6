package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// ErrNotFound is returned when the agent does not know an endpoint.
var ErrNotFound = errors.New("endpoint not found")

// ErrUnreachable wraps failures to reach the agent at all.
var ErrUnreachable = errors.New("sluice-agent unreachable")

// Client talks to the agent over its unix socket.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client for the agent listening on socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives: true,
	}
	return &Client{socket: socket, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func epPath(containerID, ifName string) string {
	return "/v1/endpoints/" + url.PathEscape(containerID) + "/" + url.PathEscape(ifName)
}

// Healthz asks whether the agent is up.
func (c *Client) Healthz(ctx context.Context) (Health, error) {
	var h Health
	err := c.do(ctx, http.MethodGet, "/v1/healthz", nil, &h)
	return h, err
}

// Config returns the agent's settings for pods. An agent without the route
// answers ErrNotFound.
func (c *Client) Config(ctx context.Context) (AgentConfig, error) {
	var cfg AgentConfig
	err := c.do(ctx, http.MethodGet, "/v1/config", nil, &cfg)
	return cfg, err
}

// PutEndpoint registers ep; it returns once the agent has written the datapath entry.
func (c *Client) PutEndpoint(ctx context.Context, ep Endpoint) (Endpoint, error) {
	var out Endpoint
	err := c.do(ctx, http.MethodPut, epPath(ep.ContainerID, ep.IfName), ep, &out)
	return out, err
}

// GetEndpoint returns one endpoint, or ErrNotFound.
func (c *Client) GetEndpoint(ctx context.Context, containerID, ifName string) (Endpoint, error) {
	var out Endpoint
	err := c.do(ctx, http.MethodGet, epPath(containerID, ifName), nil, &out)
	return out, err
}

// DeleteEndpoint removes one endpoint; it returns ErrNotFound if it was not known.
func (c *Client) DeleteEndpoint(ctx context.Context, containerID, ifName string) error {
	return c.do(ctx, http.MethodDelete, epPath(containerID, ifName), nil, nil)
}

// ListEndpoints returns all endpoints with their counters.
func (c *Client) ListEndpoints(ctx context.Context) ([]Endpoint, error) {
	var out []Endpoint
	err := c.do(ctx, http.MethodGet, "/v1/endpoints", nil, &out)
	return out, err
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://sluice-agent"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w at %s: %v", ErrUnreachable, c.socket, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read agent reply: %w", err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return ErrNotFound
	}
	if resp.StatusCode >= 300 {
		var e Error
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("agent: %s", e.Error)
		}
		return fmt.Errorf("agent: %s %s: %s", method, path, resp.Status)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode agent reply: %w", err)
		}
	}
	return nil
}
