/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Bob Jenkins' lookup3 hash of three words, as the kernel's jhash_3words()
 * (include/linux/jhash.h). The agent computes the same function in Go
 * (agent/lb/maglev.FlowHash) to know which Maglev entry a flow takes. */
#ifndef SLUICE_JHASH_H
#define SLUICE_JHASH_H

#include <linux/types.h>

#define JHASH_INITVAL	0xdeadbeef

static __always_inline __u32 jhash_rol32(__u32 w, unsigned int s)
{
	return (w << s) | (w >> (32 - s));
}

static __always_inline __u32 jhash_3words(__u32 a, __u32 b, __u32 c, __u32 initval)
{
	initval += JHASH_INITVAL + (3 << 2);
	a += initval;
	b += initval;
	c += initval;
	/* __jhash_final */
	c ^= b; c -= jhash_rol32(b, 14);
	a ^= c; a -= jhash_rol32(c, 11);
	b ^= a; b -= jhash_rol32(a, 25);
	c ^= b; c -= jhash_rol32(b, 16);
	a ^= c; a -= jhash_rol32(c, 4);
	b ^= a; b -= jhash_rol32(a, 14);
	c ^= b; c -= jhash_rol32(b, 24);
	return c;
}

#endif /* SLUICE_JHASH_H */
