package maputil

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"golang.org/x/sys/unix"
)

func TestUpdateErrorCountsFullMaps(t *testing.T) {
	err := UpdateError("test_hash", unix.E2BIG)
	assert.ErrorIs(t, err, ErrMapFull)
	assert.EqualError(t, err, "update test_hash: bpf map is full")
	assert.ErrorIs(t, UpdateError("test_trie", unix.ENOSPC), ErrMapFull, "an LPM trie says ENOSPC")
	UpdateError("test_trie", unix.ENOSPC)

	other := UpdateError("test_other", unix.EPERM)
	assert.False(t, errors.Is(other, ErrMapFull))
	assert.ErrorIs(t, other, unix.EPERM)

	got := FullCounts()
	assert.EqualValues(t, 1, got["test_hash"])
	assert.EqualValues(t, 2, got["test_trie"])
	_, ok := got["test_other"]
	assert.False(t, ok, "a failure other than full is not counted")
}
