/* Host-only randomness for fitting and evaluation (never linked into the
 * device library): splitmix64, so a fixed seed gives the same clusters,
 * splits and packs on every machine and compiler. */
#ifndef TRH_RAND_H
#define TRH_RAND_H

#include <stdint.h>

/* The next value of the splitmix64 stream whose state is *s. */
static inline uint64_t trh_splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) from the top 53 bits: every double it returns is exact. */
static inline double trh_unit_double(uint64_t *s)
{
    return (double)(trh_splitmix64(s) >> 11) / 9007199254740992.0;
}

/* Fisher-Yates shuffle of a[0..n) from the stream *s (splits and pools). */
static inline void trh_shuffle(uint32_t *a, uint32_t n, uint64_t *s)
{
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = (uint32_t)(trh_splitmix64(s) % i);
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

#endif
