/* Softmax in place with SLEEF's vector expf (1.0-ULP): the learned cluster
 * map's only transcendental. x86 uses the SSE2 entry point (every x86-64
 * has it), aarch64 the AdvSIMD one; other targets the scalar one. */
#include "tr_numeric.h" /* first: the numeric contract, for every function below */
#include "tr_kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <sleef.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#include <sleef.h>
#else
#include <sleef.h>
#endif

void tr_softmax(float *x, uint32_t n)
{
    if (n == 0)
        return;
    float mx = x[0];
    for (uint32_t i = 1; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    uint32_t i = 0;
#if defined(__x86_64__)
    const __m128 m4 = _mm_set1_ps(mx);
    for (; i + 4 <= n; i += 4)
        _mm_storeu_ps(x + i, Sleef_expf4_u10(_mm_sub_ps(_mm_loadu_ps(x + i), m4)));
#elif defined(__aarch64__)
    const float32x4_t m4 = vdupq_n_f32(mx);
    for (; i + 4 <= n; i += 4)
        vst1q_f32(x + i, Sleef_expf4_u10(vsubq_f32(vld1q_f32(x + i), m4)));
#endif
    for (; i < n; i++)
        x[i] = Sleef_expf_u10(x[i] - mx);
    float sum = 0.0f;
    for (uint32_t j = 0; j < n; j++)
        sum += x[j];
    for (uint32_t j = 0; j < n; j++)
        x[j] /= sum;
}
