package cni

import (
	"crypto/sha256"
	"encoding/hex"
)

// HostVethPrefix starts every host-side pod veth name.
const HostVethPrefix = "lxc"

// HostVethName returns the host-side veth name of the attachment
// (containerID, ifName): "lxc" + the first 11 hex digits of
// sha256(containerID + "/" + ifName). It depends only on the attachment, so
// DEL and GC find the interface even when the pod's netns is gone.
func HostVethName(containerID, ifName string) string {
	sum := sha256.Sum256([]byte(containerID + "/" + ifName))
	return HostVethPrefix + hex.EncodeToString(sum[:])[:11]
}
