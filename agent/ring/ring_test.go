package ring

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func odd(v int) bool { return v%2 == 1 }

func TestHistory(t *testing.T) {
	tests := []struct {
		name  string
		added int
		match func(int) bool
		last  int
		want  []int
	}{
		{name: "empty", added: 0, want: nil},
		{name: "not full", added: 3, want: []int{0, 1, 2}},
		{name: "exactly full", added: 4, want: []int{0, 1, 2, 3}},
		{name: "wrapped keeps the newest, oldest first", added: 10, want: []int{6, 7, 8, 9}},
		{name: "match", added: 10, match: odd, want: []int{7, 9}},
		{name: "last", added: 10, last: 3, want: []int{7, 8, 9}},
		{name: "last over what matches", added: 10, match: odd, last: 1, want: []int{9}},
		{name: "last above the count", added: 2, last: 5, want: []int{0, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := New[int](4, nil)
			for i := range tc.added {
				r.Add(i)
			}
			assert.Equal(t, tc.want, r.History(tc.match, tc.last))
		})
	}
}

func TestCapacityAtLeastOne(t *testing.T) {
	r := New[string](0, nil)
	r.Add("a")
	r.Add("b")
	assert.Equal(t, []string{"b"}, r.History(nil, 0))
}

func TestFollow(t *testing.T) {
	lost := 0
	r := New[int](8, func() { lost++ })
	r.Add(0)
	r.Add(1)
	r.Add(3)
	hist, ch, cancel := r.Follow(odd, 1, 1)
	assert.Equal(t, []int{3}, hist, "history is filtered and cut to last")

	r.Add(4) // delivered, unfiltered
	r.Add(5) // the follower's buffer is full: lost
	assert.Equal(t, 4, <-ch)
	select {
	case v := <-ch:
		t.Fatalf("unexpected item %d", v)
	default:
	}
	assert.Equal(t, 1, lost)

	cancel()
	r.Add(6)
	select {
	case v := <-ch:
		t.Fatalf("item %d after cancel", v)
	default:
	}
	assert.Equal(t, 1, lost, "a cancelled follower loses nothing")
	assert.Equal(t, []int{0, 1, 3, 4, 5, 6}, r.History(nil, 0))
}

// Items added concurrently with Follow are either in the history or on the
// channel, never neither nor both.
func TestFollowAtomic(t *testing.T) {
	const n = 2000
	r := New[int](n, nil)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			r.Add(i)
		}
	})
	hist, ch, cancel := r.Follow(nil, 0, n)
	wg.Wait()
	cancel()
	got := append([]int(nil), hist...)
	for len(ch) > 0 {
		got = append(got, <-ch)
	}
	require.Len(t, got, n)
	for i, v := range got {
		require.Equal(t, i, v)
	}
}
