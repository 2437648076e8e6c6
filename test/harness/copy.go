package harness

import (
	"io"
	"os"
)

// CopyExecutable copies the program src to dst (mode 0755, dst must not
// exist). Tracing tests and benchmarks run such copies, at paths of their
// own, so the events and rules they look at name no other process on the
// machine.
func CopyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
