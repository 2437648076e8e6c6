// Package events is the agent's process event pipeline. The process manager
// (agent/process) hands it every event it builds; a Pipeline applies the
// per-pod rate limit (RateLimiter, which reports with throttle events when
// a pod starts and stops being dropped; exits are never dropped), counts
// what passes (sluice_process_events_total), keeps recent events in a Hub
// that agent/server streams as GET /v1/events (`sluice events -f`), and
// writes them as JSON lines to a rotated file (Exporter) filtered by
// Tetragon-style allow and deny lists (ExportFilter).
package events
