/* sleef_same: the SLEEF objects mk/sleef.mk builds from source compute the
 * library's two SLEEF functions (platform/softmax.c: Sleef_expf_u10 and the
 * 4-lane Sleef_expf4_u10) to the same bits as the distribution's
 * libsleef.so.3, so a fully static program routes exactly as a dynamically
 * linked one. Linked against the static objects; the shared library is
 * opened with dlopen (without -rdynamic nothing it calls can bind to this
 * program's copies).
 *
 *   sleef_same STRIDE   every STRIDE-th float bit pattern in [-104, +90]
 *                       (exp's whole finite range and past it), plus edges
 * Prints "N same, N differ"; exit 0 only if none differ. */
#include <dlfcn.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sleef.h>

#if defined(__x86_64__)
typedef __m128 vf4;
#define LOAD4(p) _mm_loadu_ps(p)
#define STORE4(p, v) _mm_storeu_ps(p, v)
#elif defined(__aarch64__)
typedef float32x4_t vf4;
#define LOAD4(p) vld1q_f32(p)
#define STORE4(p, v) vst1q_f32(p, v)
#else
#error "sleef_same: x86-64 or aarch64"
#endif

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

int main(int argc, char **argv)
{
    uint32_t stride = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 0;
    if (stride == 0) {
        fprintf(stderr, "usage: sleef_same STRIDE (> 0)\n");
        return 2;
    }
    void *so = dlopen("libsleef.so.3", RTLD_NOW | RTLD_LOCAL);
    if (!so) {
        fprintf(stderr, "sleef_same: %s\n", dlerror());
        return 1;
    }
    float (*so_exp1)(float) = (float (*)(float))dlsym(so, "Sleef_expf_u10");
    vf4 (*so_exp4)(vf4) = (vf4(*)(vf4))dlsym(so, "Sleef_expf4_u10");
    if (!so_exp1 || !so_exp4 || (void *)so_exp1 == (void *)Sleef_expf_u10) {
        fprintf(stderr, "sleef_same: libsleef.so.3 lacks the functions, or they are this program's\n");
        return 1;
    }
    uint64_t same = 0, differ = 0;
    float in[4], mine[4], theirs[4];
    int n = 0;
    /* Negative floats from -0 to -104 (softmax's inputs are <= 0), then
     * positive ones from +0 to +90, then the edges. */
    const uint32_t lo_neg = 0x80000000u, hi_neg = to_bits(-104.0f);
    const uint32_t lo_pos = 0x00000000u, hi_pos = to_bits(90.0f);
    const float edges[] = {-0.0f, 0.0f, -104.0f, -103.97f, -87.34f, 88.72f, 88.73f, -1e-30f, 1e-30f};
    size_t n_edges = sizeof edges / sizeof edges[0];
    uint64_t total = (hi_neg - lo_neg) / stride + (hi_pos - lo_pos) / stride + 2 + n_edges;
    for (uint64_t i = 0; i < total; i++) {
        float x;
        uint64_t neg = (hi_neg - lo_neg) / stride + 1;
        if (i < neg)
            x = from_bits(lo_neg + (uint32_t)(i * stride));
        else if (i < neg + (hi_pos - lo_pos) / stride + 1)
            x = from_bits(lo_pos + (uint32_t)((i - neg) * stride));
        else
            x = edges[i - neg - (hi_pos - lo_pos) / stride - 1];
        if (to_bits(Sleef_expf_u10(x)) == to_bits(so_exp1(x)))
            same++;
        else if (differ++ < 5)
            fprintf(stderr, "expf_u10(%a): %a here, %a in libsleef.so.3\n", (double)x,
                    (double)Sleef_expf_u10(x), (double)so_exp1(x));
        in[n++] = x;
        if (n == 4 || i + 1 == total) {
            STORE4(mine, Sleef_expf4_u10(LOAD4(in)));
            STORE4(theirs, so_exp4(LOAD4(in)));
            for (int j = 0; j < n; j++) {
                if (to_bits(mine[j]) == to_bits(theirs[j]))
                    same++;
                else if (differ++ < 5)
                    fprintf(stderr, "expf4_u10(%a): %a here, %a in libsleef.so.3\n", (double)in[j],
                            (double)mine[j], (double)theirs[j]);
            }
            n = 0;
        }
    }
    printf("sleef_same: %" PRIu64 " same, %" PRIu64 " differ\n", same, differ);
    dlclose(so);
    return differ ? 1 : 0;
}
