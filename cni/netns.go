package cni

import "golang.org/x/sys/unix"

// netnsInode returns the inode of the network namespace file at path (the
// agent matches processes to pods by it), or 0 when it cannot be read: the
// agent then stats the path itself.
func netnsInode(path string) uint32 {
	var st unix.Stat_t
	if path == "" || unix.Stat(path, &st) != nil {
		return 0
	}
	return uint32(st.Ino)
}
