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
	// MaglevTables reads back the Maglev tables of a service's frontends
	// (namespace/name, namespace/name:port or address:port/protocol).
	MaglevTables(service string) ([]api.MaglevTable, error)
}
