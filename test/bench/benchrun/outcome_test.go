package benchrun

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckSluiceMeasured(t *testing.T) {
	base := Outcome{Case: "direct/0", Measured: true}
	na := Outcome{Case: "sluice-tc/1", Sluice: true, Reason: "unavailable: no --x"}
	failed := Outcome{Case: "sluice-socket/1", Sluice: true, Reason: "round 1: boom"}
	ok := Outcome{Case: "sluice-socket/10", Sluice: true, Measured: true}

	require.NoError(t, CheckSluiceMeasured([]Outcome{base}), "no Sluice case asked for")
	require.NoError(t, CheckSluiceMeasured([]Outcome{base, na, ok}), "one Sluice case measured")
	require.EqualError(t, CheckSluiceMeasured([]Outcome{base, na, failed}),
		"no Sluice configuration produced a number: sluice-tc/1 (unavailable: no --x); sluice-socket/1 (round 1: boom)")
	require.Error(t, CheckSluiceMeasured([]Outcome{na}))
	// A baseline's number does not stand in for Sluice's.
	require.Error(t, CheckSluiceMeasured([]Outcome{{Case: "iptables/1", Measured: true}, failed}))
}
