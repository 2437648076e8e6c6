package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/agent/api"
)

func TestWriteServiceTable(t *testing.T) {
	svcs := []api.Service{
		{Name: "default/web:http", Kind: "ClusterIP", Frontend: "10.96.0.10:80", Protocol: "TCP", Affinity: 10800,
			Backends: []api.ServiceBackend{
				{ID: 1, Address: "10.244.1.2:8080", State: "active", Local: true},
				{ID: 2, Address: "10.244.1.3:8080", State: "terminating"},
			}},
		{Name: "default/empty", Kind: "NodePort", Frontend: "0.0.0.0:30080", Protocol: "UDP", LocalOnly: true, Algorithm: "maglev", Mode: "hybrid"},
		{Name: "default/dsr", Kind: "LoadBalancer", Frontend: "192.0.2.7:443", Protocol: "TCP", Algorithm: "random", Mode: "dsr",
			Backends: []api.ServiceBackend{{ID: 3, Address: "10.244.2.2:8443", State: "active"}}},
	}
	var buf bytes.Buffer
	require.NoError(t, WriteServiceTable(&buf, svcs))
	want := "" +
		"SERVICE           KIND          FRONTEND           ALGORITHM  MODE    BACKEND          STATE         FLAGS\n" +
		"default/web:http  ClusterIP     10.96.0.10:80/TCP  random     -       10.244.1.2:8080  active,local  affinity=10800s\n" +
		"                                                                      10.244.1.3:8080  terminating   affinity=10800s\n" +
		"default/empty     NodePort      0.0.0.0:30080/UDP  maglev     hybrid  (none)           -             local-only\n" +
		"default/dsr       LoadBalancer  192.0.2.7:443/TCP  random     dsr     10.244.2.2:8443  active        -\n"
	assert.Equal(t, want, buf.String())

	// A service the maps do not hold is marked, with the error.
	svcs[1].Error = "service 0.0.0.0:30080/UDP (default/empty): update sluice_lb4_services_v1: bpf map is full"
	buf.Reset()
	require.NoError(t, WriteServiceTable(&buf, svcs))
	assert.Contains(t, buf.String(), "default/empty     NodePort      0.0.0.0:30080/UDP  maglev     hybrid  (none)           -             local-only,NOT-PROGRAMMED\n")
	assert.Contains(t, buf.String(), "\nNOT-PROGRAMMED default/empty 0.0.0.0:30080/UDP: service 0.0.0.0:30080/UDP (default/empty): update sluice_lb4_services_v1: bpf map is full\n")
}

// An annotation the agent did not honour marks the service's rows and is
// explained once per Service after the table; the JSON output carries the
// algorithm, the mode (none for ClusterIP) and the warnings.
func TestWriteServiceTableWarnings(t *testing.T) {
	w := `annotation service.sluice.io/lb-mode="dsr": this node cannot send DSR (routing vxlan); using snat`
	svcs := []api.Service{
		{Name: "default/web:http", Kind: "ClusterIP", Frontend: "10.96.0.10:80", Protocol: "TCP", Algorithm: "random", Warnings: []string{w}},
		{Name: "default/web:http", Kind: "NodePort", Frontend: "0.0.0.0:30080", Protocol: "TCP", Algorithm: "random", Mode: "snat", Warnings: []string{w}},
		{Name: "default/web:admin", Kind: "NodePort", Frontend: "0.0.0.0:30081", Protocol: "TCP", Algorithm: "random", Mode: "snat", Warnings: []string{w}},
	}
	var buf bytes.Buffer
	require.NoError(t, WriteServiceTable(&buf, svcs))
	out := buf.String()
	assert.Regexp(t, `(?m)^default/web:http +ClusterIP +10\.96\.0\.10:80/TCP +random +- +\(none\) +- +WARNING$`, out)
	assert.Regexp(t, `(?m)^default/web:http +NodePort +0\.0\.0\.0:30080/TCP +random +snat +\(none\) +- +WARNING$`, out)
	assert.Equal(t, 1, strings.Count(out, "\nWARNING default/web: "+w+"\n"), out)

	buf.Reset()
	require.NoError(t, render(&buf, OutputJSON, svcs[:2], func(io.Writer) error { return nil }))
	var got []map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &got))
	require.Len(t, got, 2)
	assert.Equal(t, "random", got[0]["algorithm"])
	assert.NotContains(t, got[0], "mode", "ClusterIP has no mode")
	assert.Equal(t, "snat", got[1]["mode"])
	assert.Equal(t, []any{w}, got[1]["warnings"])
}

func TestWriteLBMapsAndCT(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, WriteLBMaps(&buf, api.LBMaps{
		Services: []api.LBMapService{{Frontend: "10.96.0.10:80", Protocol: "TCP", RevNATID: 3, Flags: []string{"affinity"}, BackendIDs: []uint32{1, 2}}},
		Backends: []api.LBMapBackend{{ID: 1, Address: "10.244.1.2:8080", Protocol: "TCP"}, {ID: 2, Address: "10.244.1.3:8080", Protocol: "TCP", Terminating: true}},
		RevNAT:   []api.LBMapRevNAT{{ID: 3, Frontend: "10.96.0.10:80/TCP"}},
	}))
	out := buf.String()
	assert.Contains(t, out, "10.96.0.10:80/TCP  3       affinity  1 2")
	assert.Contains(t, out, "2           10.244.1.3:8080/TCP  terminating")
	assert.Contains(t, out, "3          10.96.0.10:80/TCP")

	buf.Reset()
	require.NoError(t, WriteCT(&buf, []api.CTEntry{{Protocol: "TCP", Source: "10.244.1.2:40000", Destination: "10.96.0.10:80", Service: true, BackendID: 1, RevNATID: 3, ExpiresIn: 60, Packets: 4}}))
	assert.Contains(t, buf.String(), "TCP    10.244.1.2:40000  10.96.0.10:80  service  1        3       60s      4")

	buf.Reset()
	require.NoError(t, WriteCT(&buf, []api.CTEntry{{Protocol: "UDP", Source: "10.244.1.2:5353", Destination: "10.244.1.3:53", PolicyAllowed: true, ExpiresIn: 30, Packets: 2}}))
	assert.Contains(t, buf.String(), "flow,policy")
}

func TestWriteMaglev(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, WriteMaglev(&buf, []api.MaglevTable{
		{Service: "default/web:http", Frontend: "10.96.0.10:80/TCP", RevNATID: 3, Size: 251, Backends: []api.MaglevBackend{
			{ID: 1, Address: "10.244.1.2:8080", Entries: 126, Share: 126.0 / 251},
			{ID: 2, Address: "10.244.1.3:8080", Entries: 125, Share: 125.0 / 251},
		}},
		{Service: "default/web:http", Frontend: "0.0.0.0:30080/TCP", RevNATID: 4, Error: "no Maglev table (random selection, or fewer than 2 backends)"},
	}))
	out := buf.String()
	assert.Regexp(t, `(?m)^SERVICE +FRONTEND +REVNAT +SIZE +BACKEND ID +BACKEND +ENTRIES +SHARE$`, out)
	assert.Regexp(t, `(?m)^default/web:http +10\.96\.0\.10:80/TCP +3 +251 +1 +10\.244\.1\.2:8080 +126 +50\.20%$`, out)
	assert.Regexp(t, `(?m)^ +2 +10\.244\.1\.3:8080 +125 +49\.80%$`, out)
	assert.Regexp(t, `(?m)^default/web:http +0\.0\.0\.0:30080/TCP +4 +- +- +\(no Maglev table \(random selection, or fewer than 2 backends\)\) +- +-$`, out)
}

// A Service with a health-check node port shows it with what it answers,
// or that it could not be opened, once per Service.
func TestWriteServiceTableHealthCheck(t *testing.T) {
	hc := &api.ServiceHealthCheck{Port: 32000, LocalEndpoints: 2, Listening: true}
	svcs := []api.Service{
		{Name: "default/lb:http", Kind: "NodePort", Frontend: "0.0.0.0:30080", Protocol: "TCP", LocalOnly: true, HealthCheck: hc},
	}
	var buf bytes.Buffer
	require.NoError(t, WriteServiceTable(&buf, svcs))
	assert.Contains(t, buf.String(), "local-only,healthcheck=32000:2-local\n")

	svcs = append(svcs, api.Service{Name: "default/lb:https", Kind: "NodePort", Frontend: "0.0.0.0:30443", Protocol: "TCP", HealthCheck: hc})
	*hc = api.ServiceHealthCheck{Port: 32000, Error: "listen tcp :32000: bind: address already in use"}
	buf.Reset()
	require.NoError(t, WriteServiceTable(&buf, svcs))
	assert.Contains(t, buf.String(), "local-only,healthcheck=32000:NOT-OPEN\n")
	assert.Equal(t, 1, bytes.Count(buf.Bytes(), []byte("\nHEALTHCHECK-NOT-OPEN default/lb port 32000: listen tcp :32000: bind: address already in use\n")))
}
