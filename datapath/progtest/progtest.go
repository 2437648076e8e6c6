// Package progtest runs BPF programs on crafted packets with BPF_PROG_TEST_RUN
// and builds those packets with gopacket, and loads the datapath into a
// test's private bpffs. It is used by the datapath tests and benchmarks.
package progtest

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// TC actions as returned by tc/TCX programs.
const (
	ActOK       = 0
	ActShot     = 2
	ActRedirect = 7
)

// Result is what one test run produced.
type Result struct {
	Verdict uint32 // program return value
	Packet  []byte // packet after the program ran
}

// Run runs prog once on pkt. ifindex sets __sk_buff->ifindex (0 keeps the
// kernel's default, loopback); it must name a device in the caller's netns.
func Run(tb testing.TB, prog *ebpf.Program, pkt []byte, ifindex uint32) Result {
	tb.Helper()
	res, err := TryRun(prog, pkt, ifindex)
	if err != nil {
		tb.Fatalf("BPF_PROG_TEST_RUN: %v", err)
	}
	return res
}

// TryRun is Run that returns the error of BPF_PROG_TEST_RUN (which refuses
// a frame too short for the program type, for one).
func TryRun(prog *ebpf.Program, pkt []byte, ifindex uint32) (Result, error) {
	out := make([]byte, len(pkt)+256)
	opts := &ebpf.RunOptions{Data: pkt, DataOut: out}
	if ifindex != 0 {
		ctx := make([]byte, skbCtxSize)
		putIfindex(ctx, ifindex)
		opts.Context = ctx
	}
	ret, err := prog.Run(opts)
	if err != nil {
		return Result{}, err
	}
	return Result{Verdict: ret, Packet: opts.DataOut}, nil
}

// Layer offsets of struct __sk_buff (uapi/linux/bpf.h): ifindex is the 11th
// __u32 (len, pkt_type, mark, queue_mapping, protocol, vlan_present,
// vlan_tci, vlan_proto, priority, ingress_ifindex, ifindex).
const (
	skbCtxSize       = 192
	skbIfindexOffset = 40
)

func putIfindex(ctx []byte, ifindex uint32) {
	ctx[skbIfindexOffset] = byte(ifindex)
	ctx[skbIfindexOffset+1] = byte(ifindex >> 8)
	ctx[skbIfindexOffset+2] = byte(ifindex >> 16)
	ctx[skbIfindexOffset+3] = byte(ifindex >> 24)
}

// Packet describes an Ethernet frame to build.
type Packet struct {
	SrcMAC, DstMAC net.HardwareAddr
	Src, Dst       netip.Addr
	TTL            uint8 // default 64
	Proto          layers.IPProtocol
	SrcPort        uint16
	DstPort        uint16
	Payload        []byte
	// TCPFlags replaces the default flags (SYN) of a TCP packet when set.
	TCPFlags uint8
	// NoUDPChecksum sends UDP without a checksum (checksum field 0).
	NoUDPChecksum bool
}

// TCP flag bits for Packet.TCPFlags.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPPsh = 0x08
	TCPAck = 0x10
)

// IPv4 serializes p as Ethernet/IPv4/(TCP|UDP|ICMP) with valid checksums.
func (p Packet) IPv4() []byte {
	ttl := p.TTL
	if ttl == 0 {
		ttl = 64
	}
	proto := p.Proto
	if proto == 0 {
		proto = layers.IPProtocolTCP
	}
	eth := &layers.Ethernet{SrcMAC: p.SrcMAC, DstMAC: p.DstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: ttl, Protocol: proto, SrcIP: p.Src.AsSlice(), DstIP: p.Dst.AsSlice(), Id: 1, Flags: layers.IPv4DontFragment}
	ls := []gopacket.SerializableLayer{eth, ip}
	switch proto {
	case layers.IPProtocolTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(p.SrcPort), DstPort: layers.TCPPort(p.DstPort), SYN: true, Seq: 1, Window: 64240}
		if f := p.TCPFlags; f != 0 {
			tcp.FIN, tcp.SYN, tcp.RST, tcp.PSH, tcp.ACK = f&TCPFin != 0, f&TCPSyn != 0, f&TCPRst != 0, f&TCPPsh != 0, f&TCPAck != 0
		}
		if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
			panic(err)
		}
		ls = append(ls, tcp)
	case layers.IPProtocolUDP:
		udp := &layers.UDP{SrcPort: layers.UDPPort(p.SrcPort), DstPort: layers.UDPPort(p.DstPort)}
		if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
			panic(err)
		}
		ls = append(ls, udp)
	case layers.IPProtocolICMPv4:
		ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 1, Seq: 1})
	}
	ls = append(ls, gopacket.Payload(p.Payload))
	pkt := serialize(ls...)
	if proto == layers.IPProtocolUDP && p.NoUDPChecksum {
		pkt[14+20+6], pkt[14+20+7] = 0, 0
	}
	return pkt
}

// ARP builds an ARP request from (sha, spa) asking for tpa.
func ARP(srcMAC net.HardwareAddr, sha net.HardwareAddr, spa, tpa netip.Addr) []byte {
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
		SourceHwAddress: sha, SourceProtAddress: spa.AsSlice(),
		DstHwAddress: make([]byte, 6), DstProtAddress: tpa.AsSlice(),
	}
	return serialize(eth, arp)
}

// IPv6 builds a minimal Ethernet/IPv6/UDP frame.
func IPv6(srcMAC, dstMAC net.HardwareAddr) []byte {
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP,
		SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")}
	udp := &layers.UDP{SrcPort: 1, DstPort: 2}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		panic(err)
	}
	return serialize(eth, ip, udp)
}

func serialize(ls ...gopacket.SerializableLayer) []byte {
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		panic(fmt.Sprintf("serialize packet: %v", err))
	}
	return buf.Bytes()
}

// Decoded is a parsed output packet.
type Decoded struct {
	Eth *layers.Ethernet
	IP  *layers.IPv4
	TCP *layers.TCP
	UDP *layers.UDP
}

// Decode parses an Ethernet frame and fails tb on decoding errors.
func Decode(tb testing.TB, pkt []byte) Decoded {
	tb.Helper()
	p := gopacket.NewPacket(pkt, layers.LayerTypeEthernet, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		tb.Fatalf("decode output packet: %v", el.Error())
	}
	var d Decoded
	d.Eth, _ = p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	d.IP, _ = p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	d.TCP, _ = p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	d.UDP, _ = p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	return d
}

// IPv4HeaderChecksumOK verifies the IPv4 header checksum of an Ethernet frame.
func IPv4HeaderChecksumOK(pkt []byte) bool {
	const eth = 14
	if len(pkt) < eth+20 {
		return false
	}
	ihl := int(pkt[eth]&0x0f) * 4
	if len(pkt) < eth+ihl {
		return false
	}
	var sum uint32
	for i := eth; i < eth+ihl; i += 2 {
		sum += uint32(pkt[i])<<8 | uint32(pkt[i+1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum) == 0xffff
}

// L4ChecksumOK verifies the TCP or UDP checksum of an Ethernet/IPv4 frame by
// recomputing it over the IPv4 pseudo header and the whole segment. A UDP
// checksum of 0 (none sent) is reported as OK; check L4Checksum for it.
func L4ChecksumOK(pkt []byte) bool {
	const eth = 14
	if len(pkt) < eth+20 {
		return false
	}
	ihl := int(pkt[eth]&0x0f) * 4
	total := int(pkt[eth+2])<<8 | int(pkt[eth+3])
	if len(pkt) < eth+total || total < ihl {
		return false
	}
	proto := pkt[eth+9]
	seg := pkt[eth+ihl : eth+total]
	switch proto {
	case 6:
		if len(seg) < 20 {
			return false
		}
	case 17:
		if len(seg) < 8 {
			return false
		}
		if seg[6] == 0 && seg[7] == 0 {
			return true
		}
	default:
		return false
	}
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(pkt[eth+12 : eth+20]) // source and destination address
	sum += uint32(proto) + uint32(len(seg))
	add(seg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum) == 0xffff
}

// L4Checksum returns the checksum field of the TCP or UDP header of an
// Ethernet/IPv4 frame.
func L4Checksum(pkt []byte) uint16 {
	const eth = 14
	ihl := int(pkt[eth]&0x0f) * 4
	off := eth + ihl + 6
	if pkt[eth+9] == 6 {
		off = eth + ihl + 16
	}
	return uint16(pkt[off])<<8 | uint16(pkt[off+1])
}

// XDP actions as returned by XDP programs.
const (
	XDPAborted  = 0
	XDPDrop     = 1
	XDPPass     = 2
	XDPTx       = 3
	XDPRedirect = 4
)

// RunXDP runs the XDP program prog once on pkt as received on ifindex
// (xdp_md->ingress_ifindex; 0: loopback). ifindex must name a device in the
// caller's netns.
func RunXDP(tb testing.TB, prog *ebpf.Program, pkt []byte, ifindex uint32) Result {
	tb.Helper()
	res, err := TryRunXDP(prog, pkt, ifindex)
	if err != nil {
		tb.Fatalf("BPF_PROG_TEST_RUN (xdp): %v", err)
	}
	return res
}

// TryRunXDP is RunXDP that returns the error of BPF_PROG_TEST_RUN.
func TryRunXDP(prog *ebpf.Program, pkt []byte, ifindex uint32) (Result, error) {
	out := make([]byte, len(pkt)+256)
	opts := &ebpf.RunOptions{Data: pkt, DataOut: out, Context: XDPContext(len(pkt), ifindex)}
	ret, err := prog.Run(opts)
	if err != nil {
		return Result{}, err
	}
	return Result{Verdict: ret, Packet: opts.DataOut}, nil
}

// XDPContext is a struct xdp_md for a frame of n bytes received on ifindex:
// data 0, data_end n, data_meta 0, ingress_ifindex, rx_queue_index 0,
// egress_ifindex 0 (six __u32).
func XDPContext(n int, ifindex uint32) []byte {
	ctx := make([]byte, 24)
	ctx[4], ctx[5], ctx[6], ctx[7] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
	ctx[12], ctx[13], ctx[14], ctx[15] = byte(ifindex), byte(ifindex>>8), byte(ifindex>>16), byte(ifindex>>24)
	return ctx
}
