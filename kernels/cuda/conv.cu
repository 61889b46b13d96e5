// Conv2d as an implicit GEMM (im2col on the fly, no workspace) and 2-D pooling, NCHW f32.
#include "common.cuh"

// Must match `ConvParams` in crates/crossover-cuda/src/launch.rs.
struct ConvParams {
    const float* x;
    const float* w;    // [oc, c/groups, kh, kw]
    const float* bias; // [oc] or null
    float* y;
    i64 n, c, h, w_, oc, oh, ow;
    i64 kh, kw, sh, sw, ph, pw, dh, dw;
    i64 groups;
    int act, _pad;
};

// Rows m = (image, oh, ow), columns = output channels of one group (blockIdx.z), depth
// k = (input channel, kh, kw). Same 64×64×16 tiling as gemm_f32.
extern "C" __global__ void __launch_bounds__(256) conv2d_f32(ConvParams p) {
    __shared__ float As[16][64 + 4];
    __shared__ float Bs[16][64 + 4];
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const i64 g = blockIdx.z;
    const i64 cg = p.c / p.groups, ocg = p.oc / p.groups;
    const i64 M = p.n * p.oh * p.ow, N = ocg, K = cg * p.kh * p.kw;
    const i64 m0 = (i64)blockIdx.y * 64, n0 = (i64)blockIdx.x * 64;
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.f;
    for (i64 k0 = 0; k0 < K; k0 += 16) {
        for (int i = tid; i < 64 * 16; i += 256) {
            const int r = i / 16, cc = i % 16;
            const i64 gm = m0 + r, gk = k0 + cc;
            float v = 0.f;
            if (gm < M && gk < K) {
                const i64 ox = gm % p.ow, oy = (gm / p.ow) % p.oh, img = gm / (p.ow * p.oh);
                const i64 kx = gk % p.kw, ky = (gk / p.kw) % p.kh, ch = gk / (p.kw * p.kh);
                const i64 iy = oy * p.sh - p.ph + ky * p.dh, ix = ox * p.sw - p.pw + kx * p.dw;
                if (iy >= 0 && iy < p.h && ix >= 0 && ix < p.w_)
                    v = p.x[((img * p.c + g * cg + ch) * p.h + iy) * p.w_ + ix];
            }
            As[cc][r] = v;
            const int kr = i / 64, nc = i % 64;
            const i64 gk2 = k0 + kr, gn = n0 + nc;
            Bs[kr][nc] = (gk2 < K && gn < N) ? p.w[(g * ocg + gn) * K + gk2] : 0.f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < 16; ++kk) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const i64 gm = m0 + ty + 16 * i;
        if (gm >= M) continue;
        const i64 ox = gm % p.ow, oy = (gm / p.ow) % p.oh, img = gm / (p.ow * p.oh);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const i64 gn = n0 + tx + 16 * j;
            if (gn >= N) continue;
            const i64 o = g * ocg + gn;
            float v = acc[i][j] + (p.bias ? p.bias[o] : 0.f);
            p.y[((img * p.oc + o) * p.oh + oy) * p.ow + ox] = apply_act(v, p.act);
        }
    }
}

// Must match `PoolParams` in crates/crossover-cuda/src/launch.rs.
struct PoolParams {
    const float* x;
    float* y;
    i64 nc, h, w, oh, ow;
    i64 kh, kw, sh, sw, ph, pw, dh, dw;
    i64 peh, pew; // padding after each axis (only counted by count_include_pad)
    int max, count_pad;
};

extern "C" __global__ void pool2d_f32(PoolParams p) {
    const i64 total = p.nc * p.oh * p.ow;
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < total; i += (i64)gridDim.x * blockDim.x) {
        const i64 ox = i % p.ow, oy = (i / p.ow) % p.oh, plane = i / (p.ow * p.oh);
        const float* xp = p.x + plane * p.h * p.w;
        float acc = p.max ? -INFINITY : 0.f;
        i64 count = 0;
        for (i64 ky = 0; ky < p.kh; ++ky) {
            const i64 iy = oy * p.sh - p.ph + ky * p.dh;
            for (i64 kx = 0; kx < p.kw; ++kx) {
                const i64 ix = ox * p.sw - p.pw + kx * p.dw;
                if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w) {
                    // Padding counts toward the average only inside the padded extent.
                    if (p.count_pad && iy >= -p.ph && iy < p.h + p.peh && ix >= -p.pw && ix < p.w + p.pew) ++count;
                    continue;
                }
                const float v = xp[iy * p.w + ix];
                acc = p.max ? fmaxf(acc, v) : acc + v;
                ++count;
            }
        }
        p.y[i] = p.max ? acc : (count > 0 ? acc / (float)count : 0.f);
    }
}
