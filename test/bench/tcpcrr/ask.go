package tcpcrr

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"time"
)

// Ask connects to target, sends QueryByte and returns the first line the
// server sends: its name (announced first, or the answer to the query).
func Ask(target string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("tcp4", target, timeout)
	if err != nil {
		return "", fmt.Errorf("connect %s: %w", target, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{QueryByte}); err != nil {
		return "", fmt.Errorf("write to %s: %w", target, err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read from %s: %w", target, err)
	}
	name := strings.TrimSuffix(line, "\n")
	if name == "" {
		return "", fmt.Errorf("%s answered an empty name", target)
	}
	return name, nil
}
