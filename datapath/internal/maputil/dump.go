package maputil

import (
	"errors"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// dumpBatch is the number of entries Dump reads per system call.
const dumpBatch = 4096

// Dump calls fn with every entry of a hash map, read in batches
// (BPF_MAP_LOOKUP_BATCH: one system call per batch rather than two per
// entry); where the kernel or the map type has no batch lookup it iterates.
// As with iteration, an entry changed during the dump may be missed or seen
// twice.
func Dump[K, V any](m *ebpf.Map, fn func(K, V)) error {
	keys, vals := make([]K, dumpBatch), make([]V, dumpBatch)
	var cursor ebpf.MapBatchCursor
	for first := true; ; first = false {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		for i := range n {
			fn(keys[i], vals[i])
		}
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return nil
		case errors.Is(err, unix.ENOSPC) && n == 0:
			// A hash bucket larger than the batch: nothing was read.
			keys, vals = make([]K, 2*len(keys)), make([]V, 2*len(vals))
		case first && n == 0 && (errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.EINVAL)):
			return iterate(m, fn)
		case err != nil:
			return err
		}
	}
}

func iterate[K, V any](m *ebpf.Map, fn func(K, V)) error {
	var (
		k K
		v V
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		fn(k, v)
	}
	return it.Err()
}
