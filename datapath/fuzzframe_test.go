package datapath_test

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// Frame mutations of the packet fuzzer (bits of its mut knob).
const (
	mutVLAN      = 1 << iota // an 802.1Q tag
	mutQinQ                  // an 802.1ad tag outside the 802.1Q one
	mutOptions               // IPv4 options (IHL > 5)
	mutMoreFrags             // MF set: a first fragment (or, with an offset, a middle one)
	mutFragOff               // a fragment offset: a later fragment, without L4 header
	mutTotLen                // an IPv4 total length that does not fit the frame
	mutIHL                   // an IHL that does not fit the header
	mutTruncate              // the frame cut short
	mutIPCsum                // a wrong IPv4 header checksum
	mutL4Csum                // a wrong L4 checksum
	mutRawL4                 // random bytes instead of an L4 header
	mutVersion               // an IP version other than 4
	mutPadding               // bytes after the IPv4 packet (Ethernet padding)
)

// fuzzReader hands out the fuzzer's data bytes; past the end it gives zeros.
type fuzzReader struct{ b []byte }

func (r *fuzzReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *fuzzReader) u16() uint16 { return uint16(r.byte())<<8 | uint16(r.byte()) }

func (r *fuzzReader) bytes(n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = r.byte()
	}
	return out
}

// fuzzFrame is a frame the fuzzer built and what it knows about it.
type fuzzFrame struct {
	raw    []byte
	l3     int // offset of the IPv4 header (14 untagged)
	src    netip.Addr
	srcMAC net.HardwareAddr
	// csumOK: the frame is one unmutated IPv4 packet whose header and (for
	// an unfragmented TCP/UDP packet) L4 checksums are valid, so a program
	// that forwards it must keep them valid.
	ipCsumOK, l4CsumOK bool
}

// frameSpec is the part of a frame the fuzz target chooses from its fixture.
type frameSpec struct {
	srcMAC, dstMAC   net.HardwareAddr
	src, dst         netip.Addr
	proto            uint8
	sport, dport     uint16
	ttl              uint8
	tcpFlags         uint8
	icmpType, icmpID uint16
}

// buildFrame builds s as an Ethernet/IPv4 frame, then applies the mutations
// in mut, reading their parameters (and the payload) from r.
func buildFrame(s frameSpec, mut uint16, r *fuzzReader) fuzzFrame {
	payload := r.bytes(int(r.byte() % 48))
	var l4 []byte
	switch {
	case mut&mutRawL4 != 0:
		l4 = r.bytes(int(r.byte() % 24))
	case s.proto == 6:
		l4 = make([]byte, 20)
		binary.BigEndian.PutUint16(l4[0:], s.sport)
		binary.BigEndian.PutUint16(l4[2:], s.dport)
		binary.BigEndian.PutUint32(l4[4:], 1)
		l4[12] = 5 << 4
		l4[13] = s.tcpFlags
		binary.BigEndian.PutUint16(l4[14:], 64240)
	case s.proto == 17:
		l4 = make([]byte, 8)
		binary.BigEndian.PutUint16(l4[0:], s.sport)
		binary.BigEndian.PutUint16(l4[2:], s.dport)
	case s.proto == 1:
		l4 = make([]byte, 8)
		binary.BigEndian.PutUint16(l4[0:], s.icmpType) // type, code
		binary.BigEndian.PutUint16(l4[4:], s.icmpID)
		binary.BigEndian.PutUint16(l4[6:], 1)
	}
	l4 = append(l4, payload...)
	var opts []byte
	if mut&mutOptions != 0 {
		opts = r.bytes(4 * (1 + int(r.byte()%10)))
	}
	ihl := 5 + len(opts)/4
	ip := make([]byte, ihl*4, ihl*4+len(l4))
	ip[0] = 4<<4 | byte(ihl)
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)+len(l4)))
	binary.BigEndian.PutUint16(ip[4:], 1)
	frag := uint16(0x4000) // DF
	if mut&(mutMoreFrags|mutFragOff) != 0 {
		frag = 0
		if mut&mutMoreFrags != 0 {
			frag |= 0x2000
		}
		if mut&mutFragOff != 0 {
			frag |= 1 + r.u16()%0x1fff
		}
	}
	binary.BigEndian.PutUint16(ip[6:], frag)
	ip[8], ip[9] = s.ttl, s.proto
	copy(ip[12:16], s.src.AsSlice())
	copy(ip[16:20], s.dst.AsSlice())
	copy(ip[20:], opts)
	binary.BigEndian.PutUint16(ip[10:], inetChecksum(ip, 0))
	l4CsumSet := false
	if mut&mutRawL4 == 0 {
		switch s.proto {
		case 6, 17:
			off := map[uint8]int{6: 16, 17: 6}[s.proto]
			binary.BigEndian.PutUint16(l4[off:], inetChecksum(l4, pseudoSum(s.src, s.dst, s.proto, len(l4))))
			l4CsumSet = true
		case 1:
			binary.BigEndian.PutUint16(l4[2:], inetChecksum(l4, 0))
		}
	}
	pkt := append(ip, l4...)

	f := fuzzFrame{src: s.src, srcMAC: s.srcMAC, ipCsumOK: true, l4CsumOK: l4CsumSet && frag&0x3fff == 0}
	if mut&mutL4Csum != 0 && len(l4) >= 8 {
		i := len(ip) + 6
		if s.proto == 6 && len(l4) >= 18 {
			i = len(ip) + 16
		}
		pkt[i] ^= 1 | r.byte()
		f.l4CsumOK = false
	}
	if mut&mutTotLen != 0 {
		binary.BigEndian.PutUint16(pkt[2:], r.u16())
		f.ipCsumOK, f.l4CsumOK = false, false
	}
	if mut&mutIHL != 0 {
		pkt[0] = pkt[0]&0xf0 | r.byte()&0x0f
		f.ipCsumOK, f.l4CsumOK = false, false
	}
	if mut&mutVersion != 0 {
		pkt[0] = r.byte()<<4 | pkt[0]&0x0f
		f.ipCsumOK, f.l4CsumOK = false, false
	}
	if mut&(mutTotLen|mutIHL|mutVersion) != 0 {
		binary.BigEndian.PutUint16(pkt[10:], 0)
		binary.BigEndian.PutUint16(pkt[10:], inetChecksum(pkt[:min(len(pkt), max(20, int(pkt[0]&0x0f)*4))], 0))
	}
	if mut&mutIPCsum != 0 {
		pkt[10] ^= 1 | r.byte()
		f.ipCsumOK = false
	}
	if mut&mutPadding != 0 {
		pkt = append(pkt, r.bytes(1+int(r.byte()%32))...)
	}

	eth := append(append([]byte{}, s.dstMAC...), s.srcMAC...)
	f.l3 = 14
	if mut&mutQinQ != 0 {
		eth = append(eth, 0x88, 0xa8, r.byte()&0x0f, r.byte())
		f.l3 += 4
	}
	if mut&(mutVLAN|mutQinQ) != 0 {
		eth = append(eth, 0x81, 0x00, r.byte()&0x0f, r.byte())
		f.l3 += 4
	}
	eth = append(eth, 0x08, 0x00)
	f.raw = append(eth, pkt...)
	if mut&mutTruncate != 0 {
		// BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header.
		n := 14 + int(r.u16())%(len(f.raw)-13)
		if n < len(f.raw) {
			f.raw = f.raw[:n]
			f.ipCsumOK = f.ipCsumOK && n >= f.l3+ihl*4
			f.l4CsumOK = false
		}
	}
	return f
}

// pseudoSum is the one's complement sum of the IPv4 pseudo header.
func pseudoSum(src, dst netip.Addr, proto uint8, l4len int) uint32 {
	var sum uint32
	for _, a := range []netip.Addr{src, dst} {
		b := a.As4()
		sum += (uint32(b[0])<<8 | uint32(b[1])) + (uint32(b[2])<<8 | uint32(b[3]))
	}
	return sum + uint32(proto) + uint32(l4len)
}

// inetChecksum is the Internet checksum of b (its checksum field zero)
// with sum as the starting value.
func inetChecksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
