package tracing

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
)

// spec.connects: destinations (CIDRs, addresses, a 4-in-6 address),
// ports and ranges, protocols; Override with argError -1 (or none) is the
// EPERM denial.
func TestCompileConnects(t *testing.T) {
	c := tracepoints(t, `
  connects:
  - selectors:
    - matchBinaries: [{operator: In, values: [/usr/bin/curl]}]
      matchArgs:
      - {index: 0, operator: DAddr, values: [10.96.0.1/12, 192.168.1.7, "::ffff:10.1.2.3"]}
      - {index: 0, operator: NotDPort, values: ["53", "8080:8082"]}
      - {index: 0, operator: Protocol, values: [IPPROTO_TCP, tcp, "17"]}
      matchActions: [{action: Override, argError: -1}]
    - matchArgs: [{index: 0, operator: NotDaddr, values: [127.0.0.0/8]}]
      matchParentBinaries: [{operator: Prefix, values: [/usr/]}]
      matchActions: [{action: Override}]
  - selectors:
    - matchArgs: [{index: 0, operator: dport, values: ["443"]}]
`)
	assert.Equal(t, [][]ConnectSelector{{{
		ProcessFilters: ProcessFilters{Binaries: []BinaryMatch{{Op: BinaryIn, Values: []string{"/usr/bin/curl"}}}},
		Dests: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("192.168.1.7/32"),
			netip.MustParsePrefix("10.1.2.3/32")},
		Ports: []uint16{53, 8080, 8081, 8082}, NotPorts: true,
		Protocols: []uint8{6, 17},
		Action:    ActionOverride,
	}, {
		ProcessFilters: ProcessFilters{ParentBinaries: []BinaryMatch{{Op: BinaryPrefix, Values: []string{"/usr/"}}}},
		Dests:          []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, NotDests: true,
		Action: ActionOverride,
	}}, {{
		Ports:  []uint16{443},
		Action: ActionPost,
	}}}, c.Connects)
}
