package cni

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// QueuedDelete is the content of a file in <runDir>/delete-queue/: an
// endpoint deletion DEL could not hand to the agent because the agent was not
// reachable. The agent deletes the endpoint (if it knows it) when it starts
// and removes the file.
type QueuedDelete struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
}

// sanitize keeps [A-Za-z0-9._-] and replaces anything else with '_' so that a
// name is always one safe path component.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}

// QueueFileName returns the queue file name of an attachment:
// "<sanitized containerID>_<sanitized ifName>.json".
func QueueFileName(containerID, ifName string) string {
	name := sanitize(containerID) + "_" + sanitize(ifName) + ".json"
	if strings.HasPrefix(name, ".") {
		name = "_" + name[1:]
	}
	return name
}

// QueueDelete writes the deletion of (containerID, ifName) into dir
// atomically (temporary file, then rename) and returns the file's path. Queuing
// the same attachment twice leaves one file.
func QueueDelete(dir, containerID, ifName string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create delete queue %s: %w", dir, err)
	}
	data, err := json.Marshal(QueuedDelete{ContainerID: containerID, IfName: ifName})
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, QueueFileName(containerID, ifName))
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return "", fmt.Errorf("queue deletion of %s/%s: %w", containerID, ifName, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return "", fmt.Errorf("queue deletion of %s/%s: %w", containerID, ifName, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("queue deletion of %s/%s: %w", containerID, ifName, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("queue deletion of %s/%s: %w", containerID, ifName, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("queue deletion of %s/%s: %w", containerID, ifName, err)
	}
	return path, nil
}
