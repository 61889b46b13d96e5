// Fused scaled-dot-product attention for the encoder pattern: out = softmax(scale·QKᵀ +
// mask)·V per (batch, head), with online softmax so scores never reach memory. One warp
// per query row; the head size is at most 128 (4 values per lane).
#include "common.cuh"

// Must match `AttnParams` in crates/crossover-cuda/src/launch.rs. Strides in elements,
// order (batch, head, seq, dim); a mask stride of 0 broadcasts.
struct AttnParams {
    const float* q;
    const float* k;
    const float* v;
    const float* mask; // additive, or null
    float* o;
    i64 b, h, sq, sk, d;
    i64 qs[4], ks[4], vs[4], os[4];
    i64 ms[4];
    float scale;
    int causal;
};

extern "C" __global__ void __launch_bounds__(128) sdpa_f32(AttnParams p) {
    const int lane = threadIdx.x & 31;
    const i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= p.b * p.h * p.sq) return;
    const i64 qi = row % p.sq, hh = (row / p.sq) % p.h, bb = row / (p.sq * p.h);
    const float* q = p.q + bb * p.qs[0] + hh * p.qs[1] + qi * p.qs[2];
    float qv[4], acc[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
        const i64 d = lane + 32 * e;
        qv[e] = d < p.d ? q[d * p.qs[3]] * p.scale : 0.f;
        acc[e] = 0.f;
    }
    float mx = -INFINITY, sum = 0.f;
    const i64 kend = p.causal ? (qi + 1 < p.sk ? qi + 1 : p.sk) : p.sk;
    for (i64 j = 0; j < kend; ++j) {
        const float* k = p.k + bb * p.ks[0] + hh * p.ks[1] + j * p.ks[2];
        float s = 0.f;
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const i64 d = lane + 32 * e;
            if (d < p.d) s += qv[e] * k[d * p.ks[3]];
        }
        s = warp_sum(s);
        if (p.mask) s += p.mask[bb * p.ms[0] + hh * p.ms[1] + qi * p.ms[2] + j * p.ms[3]];
        if (s == -INFINITY) continue;
        const float nmx = fmaxf(mx, s);
        const float corr = expf(mx - nmx), w = expf(s - nmx);
        sum = sum * corr + w;
        const float* v = p.v + bb * p.vs[0] + hh * p.vs[1] + j * p.vs[2];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const i64 d = lane + 32 * e;
            acc[e] = acc[e] * corr + (d < p.d ? w * v[d * p.vs[3]] : 0.f);
        }
        mx = nmx;
    }
    float* o = p.o + bb * p.os[0] + hh * p.os[1] + qi * p.os[2];
    const float inv = sum > 0.f ? 1.f / sum : 0.f;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
        const i64 d = lane + 32 * e;
        if (d < p.d) o[d * p.os[3]] = acc[e] * inv;
    }
}
