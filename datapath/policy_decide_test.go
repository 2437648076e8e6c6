package datapath_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluicenet/sluice/datapath"
	"github.com/sluicenet/sluice/datapath/metricsmap"
	"github.com/sluicenet/sluice/datapath/monitor"
)

// requireDecideMatchesFlows requires policymap.Decide (what `sluice policy
// trace` reads) to decide each policy flow event of fs as the program did:
// the same verdict, deny or default, and rule, for the event's endpoint,
// direction, peer identity and address, protocol and port. The maps must
// not have changed since the events.
func requireDecideMatchesFlows(t *testing.T, d *datapath.Datapath, fs []monitor.Flow) {
	t.Helper()
	require.NotEmpty(t, fs)
	for i, f := range fs {
		peer, addr := f.DstIdentity, f.Dst.Addr()
		if f.Ingress {
			peer, addr = f.SrcIdentity, f.Src.Addr()
		}
		dec, err := d.Policy().Decide(f.EndpointID, f.Ingress, peer, addr, f.Proto, f.Dst.Port())
		require.NoError(t, err)
		dropped := f.Verdict == monitor.VerdictDropped || f.Verdict == monitor.VerdictAudit
		assert.Equal(t, !dropped, dec.Allowed, "event %d %+v: %+v", i, f, dec)
		assert.Equal(t, f.Verdict == monitor.VerdictAudit, dec.Audit, "event %d", i)
		assert.Equal(t, f.RuleID, dec.RuleID, "event %d", i)
		if dropped {
			assert.Equal(t, f.Reason == metricsmap.DropPolicyDeny, dec.Deny, "event %d", i)
		}
	}
}
