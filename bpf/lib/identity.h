/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* IP cache: IPv4 prefix -> security identity, longest prefix wins. The agent
 * writes pod addresses, node addresses (as host or remote-node) and CIDR
 * identities; an address no prefix covers is world. */
#ifndef SLUICE_IDENTITY_H
#define SLUICE_IDENTITY_H

#include "common.h"
#include "maps.h"

/* Reserved identities (identity/numeric.go). */
#define IDENTITY_HOST	1
#define IDENTITY_WORLD	2

/* Key of sluice_ipcache4_v1: prefix length in bits, then the address in
 * network byte order (the LPM trie matches bytes in memory order). */
struct ipcache4_key {
	__u32  prefixlen;
	__be32 addr;
};
_Static_assert(sizeof(struct ipcache4_key) == 8, "ipcache4_key size");

struct ipcache4_value {
	__u32 identity;
	__u32 flags;		/* reserved, 0 */
};
_Static_assert(sizeof(struct ipcache4_value) == 8, "ipcache4_value size");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache4_key);
	__type(value, struct ipcache4_value);
	__uint(max_entries, 524288);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_ipcache4_v1 SEC(".maps");

static __always_inline __u32 ipcache4_identity(__be32 addr)
{
	struct ipcache4_key key = { .prefixlen = 32, .addr = addr };
	struct ipcache4_value *val;

	val = bpf_map_lookup_elem(&sluice_ipcache4_v1, &key);
	return val ? val->identity : IDENTITY_WORLD;
}

/* Identity of addr; ep is its local endpoint entry, if any (a local pod
 * carries its identity in sluice_endpoints_v1, saving the trie walk). */
static __always_inline __u32 peer_identity(__be32 addr, const struct endpoint_info *ep)
{
	if (ep && ep->sec_identity)
		return ep->sec_identity;
	return ipcache4_identity(addr);
}

#endif /* SLUICE_IDENTITY_H */
