package policymgr_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/sluicenet/sluice/agent/policymgr"
	"github.com/sluicenet/sluice/datapath/policymap"
	"github.com/sluicenet/sluice/policy"
)

func TestPolicyKeyValidation(t *testing.T) {
	_, entries := policymgr.MapState(&policy.EndpointPolicy{Entries: map[policy.Key]policy.Entry{
		{Direction: policy.Ingress, Proto: policy.ProtoTCP}: {},
	}}, nil)
	assert.Equal(t, map[policymap.Key]policymap.Entry{{Ingress: true, Proto: policy.ProtoTCP}: {}}, entries, "all ports: one prefix /0")
	cfg, entries := policymgr.MapState(nil, nil)
	assert.Zero(t, cfg)
	assert.Empty(t, entries)
}
