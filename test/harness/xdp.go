package harness

import (
	"net"
	"runtime"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// A veth transmits a frame that an XDP program on its peer XDP_TXes or
// XDP_REDIRECTs to it only when the receiving end runs NAPI, i.e. has an
// XDP program of its own (a real NIC needs nothing of the sort): XDPPass
// gives it one. And a veth hands XDP the checksum state of the sender's
// skb: with TX checksum offload on (CHECKSUM_PARTIAL) the TCP/UDP checksum
// field holds only the pseudo-header sum, which a frame XDP sends on keeps;
// a NIC gives XDP what came off the wire. TxNoCsumOffload makes an end send
// full checksums, as a host behind a NIC does.

// XDPPass attaches an XDP program returning XDP_PASS to dev in ns (driver
// mode), detached in cleanup.
func XDPPass(tb T, ns *NetNS, dev string) {
	tb.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:    ebpf.XDP,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, 2), // XDP_PASS
			asm.Return(),
		},
	})
	if err != nil {
		tb.Fatalf("load XDP_PASS program: %v", err)
	}
	tb.Cleanup(func() { prog.Close() })
	ns.Do(tb, func() {
		ifc, err := net.InterfaceByName(dev)
		if err != nil {
			tb.Fatalf("%s in %s: %v", dev, ns.Name, err)
		}
		l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifc.Index, Flags: link.XDPDriverMode})
		if err != nil {
			tb.Fatalf("attach XDP_PASS to %s in %s: %v", dev, ns.Name, err)
		}
		tb.Cleanup(func() { l.Close() })
	})
}

// TxNoCsumOffload turns TX checksum offload off on dev in ns (ethtool -K
// dev tx off: the ETHTOOL_STXCSUM ioctl).
func TxNoCsumOffload(tb T, ns *NetNS, dev string) {
	tb.Helper()
	ns.Do(tb, func() {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			tb.Fatalf("socket: %v", err)
		}
		defer unix.Close(fd)
		const ethtoolSTXCSUM = 0x17
		val := struct{ cmd, data uint32 }{ethtoolSTXCSUM, 0}
		var ifr [40]byte
		copy(ifr[:unix.IFNAMSIZ-1], dev)
		*(*uintptr)(unsafe.Pointer(&ifr[unix.IFNAMSIZ])) = uintptr(unsafe.Pointer(&val))
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
		runtime.KeepAlive(&val)
		if errno != 0 {
			tb.Fatalf("ethtool -K %s tx off in %s: %v", dev, ns.Name, errno)
		}
	})
}

// XDPPeer readies the veth end dev in ns for frames an XDP program on its
// peer sends it: XDPPass and TxNoCsumOffload.
func XDPPeer(tb T, ns *NetNS, dev string) {
	tb.Helper()
	XDPPass(tb, ns, dev)
	TxNoCsumOffload(tb, ns, dev)
}
