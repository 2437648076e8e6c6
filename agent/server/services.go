package server

import "github.com/sluicenet/sluice/agent/api"

// Services is what the server needs from the service manager.
type Services interface {
	// Services returns the programmed services.
	Services() []api.Service
	// LBMaps dumps the load-balancing maps.
	LBMaps() (api.LBMaps, error)
	// Conntrack dumps the conntrack map.
	Conntrack() ([]api.CTEntry, error)
}

// MaglevTables is what the server needs to serve /v1/bpf/lb/maglev (the
// service manager has it).
type MaglevTables interface {
	MaglevTables(service string) ([]api.MaglevTable, error)
}
