// Command sluice-install-cni is the DaemonSet's init step: it copies the CNI
// binaries shipped in the image (sluice-cni, host-local, loopback) into the
// host's CNI bin directory. Each file is written to a temporary name and
// renamed, so a plugin the runtime is executing is never overwritten in place
// ("text file busy") and never seen half-written. The CNI conflist is not
// written here: the agent writes it from the node's PodCIDR once it is ready.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/sluicenet/sluice/agent/atomicfile"
)

func main() {
	src := flag.String("src", "/usr/lib/sluice/cni", "directory of the CNI binaries in the image")
	dst := flag.String("dst", "/host/opt/cni/bin", "host CNI bin directory (mounted)")
	flag.Parse()
	if err := install(*src, *dst); err != nil {
		fmt.Fprintln(os.Stderr, "sluice-install-cni:", err)
		os.Exit(1)
	}
}

func install(src, dst string) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("read %s: %w", src, err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dst, err)
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
		fmt.Println("installed", filepath.Join(dst, e.Name()))
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return fmt.Errorf("open %s: %w", from, err)
	}
	defer in.Close()
	err = atomicfile.Write(to, 0o755, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
	if err != nil {
		return fmt.Errorf("install %s: %w", to, err)
	}
	return nil
}
