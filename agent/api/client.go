package api

import (
	"bufio"
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

// ErrProcessNotFound is returned when the agent's process cache does not
// hold a process.
var ErrProcessNotFound = errors.New("process not found")

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

// Events calls fn with every process event the filter selects: the
// history, then with f.Follow new events until ctx ends or fn returns an
// error.
func (c *Client) Events(ctx context.Context, f EventFilter, fn func(*ProcessEvent) error) error {
	return stream(ctx, c, "/v1/events", f.Query(), "process event", fn)
}

// Processes lists the processes of the agent's process cache.
func (c *Client) Processes(ctx context.Context) ([]*Process, error) {
	var out []*Process
	err := c.do(ctx, http.MethodGet, "/v1/processes", nil, &out)
	return out, err
}

// Process returns a process of the agent's process cache and its
// ancestors, or ErrProcessNotFound.
func (c *Client) Process(ctx context.Context, execID string) (ProcessDetail, error) {
	var out ProcessDetail
	err := c.do(ctx, http.MethodGet, "/v1/processes/"+url.PathEscape(execID), nil, &out)
	if errors.Is(err, ErrNotFound) {
		return out, fmt.Errorf("%w: %s", ErrProcessNotFound, execID)
	}
	return out, err
}

// stream GETs path?query, an NDJSON stream of items (named what in
// errors), and calls fn with each until the stream ends, ctx ends or fn
// returns an error.
func stream[T any](ctx context.Context, c *Client, path string, query url.Values, what string, fn func(T) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://sluice-agent"+path+"?"+query.Encode(), nil)
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
		return fmt.Errorf("agent: GET %s: %s", path, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			return fmt.Errorf("decode %s: %w", what, err)
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("read %ss: %w", what, err)
	}
	return ctx.Err()
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
