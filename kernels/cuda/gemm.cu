// Batched GEMM: C[b] = act(alpha * A[b] @ B[b] + beta * bias), any strides for A, B and
// bias (0 broadcasts), C row-major. One f32 SIMT kernel and tensor-core kernels
// (mma.sync) for TF32, f16 and bf16, all accumulating in f32.
#include "common.cuh"

// Must match `GemmParams` in crates/crossover-cuda/src/launch.rs.
struct GemmParams {
    const void* a;
    const void* b;
    const void* bias; // may be null
    void* c;
    i64 m, n, k;
    i64 sa_b, sa_m, sa_k;
    i64 sb_b, sb_k, sb_n;
    i64 sbias_b, sbias_m, sbias_n;
    i64 sc_b, sc_m;
    float alpha, beta;
    int act, _pad;
};

template <typename T>
__device__ __forceinline__ void store_c(const GemmParams& p, i64 bz, i64 gm, i64 gn, float acc) {
    if (gm >= p.m || gn >= p.n) return;
    float v = p.alpha * acc;
    if (p.bias) {
        const T* bias = (const T*)p.bias;
        v += p.beta * to_f(bias[bz * p.sbias_b + gm * p.sbias_m + gn * p.sbias_n]);
    }
    ((T*)p.c)[bz * p.sc_b + gm * p.sc_m + gn] = from_f<T>(apply_act(v, p.act));
}

// SIMT: 64×64 tile per block of 256 threads, 4×4 outputs per thread, K in steps of 16.
#define SB 64
#define SK 16
extern "C" __global__ void __launch_bounds__(256) gemm_f32(GemmParams p) {
    __shared__ float As[SK][SB + 4];
    __shared__ float Bs[SK][SB + 4];
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const i64 bz = blockIdx.z;
    const float* A = (const float*)p.a + bz * p.sa_b;
    const float* B = (const float*)p.b + bz * p.sb_b;
    const i64 m0 = (i64)blockIdx.y * SB, n0 = (i64)blockIdx.x * SB;
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.f;
    for (i64 k0 = 0; k0 < p.k; k0 += SK) {
        for (int i = tid; i < SB * SK; i += 256) {
            const int r = i / SK, c = i % SK;
            const i64 gm = m0 + r, gk = k0 + c;
            As[c][r] = (gm < p.m && gk < p.k) ? A[gm * p.sa_m + gk * p.sa_k] : 0.f;
            const int kr = i / SB, nc = i % SB;
            const i64 gk2 = k0 + kr, gn = n0 + nc;
            Bs[kr][nc] = (gk2 < p.k && gn < p.n) ? B[gk2 * p.sb_k + gn * p.sb_n] : 0.f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < SK; ++kk) {
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
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) store_c<float>(p, bz, m0 + ty + 16 * i, n0 + tx + 16 * j, acc[i][j]);
}

// Tensor cores: 64×64 tile per block of 128 threads (2×2 warps of 32×32, each 2×4 mma
// tiles of 16×8). Fragment layouts follow the PTX ISA's mma.m16n8k8 / m16n8k16 figures:
// g = lane / 4 picks the row (A, C) or column (B), t = lane % 4 the k pair or column pair.
#define TB 64

__device__ __forceinline__ unsigned to_tf32(float x) {
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}

__device__ __forceinline__ void mma_tf32(float* c, unsigned a0, unsigned a1, unsigned a2, unsigned a3,
                                         unsigned b0, unsigned b1) {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// TF32: f32 in and out, inputs rounded to TF32 (10-bit mantissa) on the way into shared memory.
#define TK 16
extern "C" __global__ void __launch_bounds__(128) gemm_tf32(GemmParams p) {
    __shared__ unsigned As[TB][TK + 4]; // [m][k]
    __shared__ unsigned Bs[TK][TB + 8]; // [k][n]
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
    const i64 bz = blockIdx.z;
    const float* A = (const float*)p.a + bz * p.sa_b;
    const float* B = (const float*)p.b + bz * p.sb_b;
    const i64 m0 = (i64)blockIdx.y * TB, n0 = (i64)blockIdx.x * TB;
    float acc[2][4][4];
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.f;
    for (i64 k0 = 0; k0 < p.k; k0 += TK) {
        for (int i = tid; i < TB * TK; i += 128) {
            const int r = i / TK, c = i % TK;
            const i64 gm = m0 + r, gk = k0 + c;
            As[r][c] = to_tf32((gm < p.m && gk < p.k) ? A[gm * p.sa_m + gk * p.sa_k] : 0.f);
            const int kr = i / TB, nc = i % TB;
            const i64 gk2 = k0 + kr, gn = n0 + nc;
            Bs[kr][nc] = to_tf32((gk2 < p.k && gn < p.n) ? B[gk2 * p.sb_k + gn * p.sb_n] : 0.f);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < TK; kk += 8) {
            unsigned a[2][4], b[4][2];
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                const int r = wm + i * 16 + g;
                a[i][0] = As[r][kk + t];
                a[i][1] = As[r + 8][kk + t];
                a[i][2] = As[r][kk + t + 4];
                a[i][3] = As[r + 8][kk + t + 4];
            }
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const int c = wn + j * 8 + g;
                b[j][0] = Bs[kk + t][c];
                b[j][1] = Bs[kk + t + 4][c];
            }
#pragma unroll
            for (int i = 0; i < 2; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j)
                    mma_tf32(acc[i][j], a[i][0], a[i][1], a[i][2], a[i][3], b[j][0], b[j][1]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const i64 r = m0 + wm + i * 16 + g, c = n0 + wn + j * 8 + 2 * t;
            store_c<float>(p, bz, r, c, acc[i][j][0]);
            store_c<float>(p, bz, r, c + 1, acc[i][j][1]);
            store_c<float>(p, bz, r + 8, c, acc[i][j][2]);
            store_c<float>(p, bz, r + 8, c + 1, acc[i][j][3]);
        }
}

template <typename T> __device__ __forceinline__ void mma_16(float* c, const unsigned* a, const unsigned* b);
template <> __device__ __forceinline__ void mma_16<__half>(float* c, const unsigned* a, const unsigned* b) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
template <>
__device__ __forceinline__ void mma_16<__nv_bfloat16>(float* c, const unsigned* a, const unsigned* b) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// 16-bit inputs: both tiles are stored k-contiguous ([m][k] and [n][k]) so that each
// fragment register is one aligned 32-bit load of two consecutive k. Rows are padded to
// 24 halves (48 bytes) to spread shared-memory banks.
#define HK 16
template <typename T> __device__ __forceinline__ void gemm_mma16(const GemmParams& p) {
    __shared__ __align__(16) T As[TB][HK + 8];
    __shared__ __align__(16) T Bs[TB][HK + 8];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
    const i64 bz = blockIdx.z;
    const T* A = (const T*)p.a + bz * p.sa_b;
    const T* B = (const T*)p.b + bz * p.sb_b;
    const i64 m0 = (i64)blockIdx.y * TB, n0 = (i64)blockIdx.x * TB;
    const T zero = from_f<T>(0.f);
    float acc[2][4][4];
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.f;
    for (i64 k0 = 0; k0 < p.k; k0 += HK) {
        for (int i = tid; i < TB * HK; i += 128) {
            const int r = i / HK, c = i % HK;
            const i64 gk = k0 + c;
            const i64 gm = m0 + r;
            As[r][c] = (gm < p.m && gk < p.k) ? A[gm * p.sa_m + gk * p.sa_k] : zero;
            const i64 gn = n0 + r;
            Bs[r][c] = (gn < p.n && gk < p.k) ? B[gk * p.sb_k + gn * p.sb_n] : zero;
        }
        __syncthreads();
        unsigned a[2][4], b[4][2];
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            const int r = wm + i * 16 + g;
            a[i][0] = *(const unsigned*)&As[r][2 * t];
            a[i][1] = *(const unsigned*)&As[r + 8][2 * t];
            a[i][2] = *(const unsigned*)&As[r][2 * t + 8];
            a[i][3] = *(const unsigned*)&As[r + 8][2 * t + 8];
        }
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int c = wn + j * 8 + g;
            b[j][0] = *(const unsigned*)&Bs[c][2 * t];
            b[j][1] = *(const unsigned*)&Bs[c][2 * t + 8];
        }
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j) mma_16<T>(acc[i][j], a[i], b[j]);
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const i64 r = m0 + wm + i * 16 + g, c = n0 + wn + j * 8 + 2 * t;
            store_c<T>(p, bz, r, c, acc[i][j][0]);
            store_c<T>(p, bz, r, c + 1, acc[i][j][1]);
            store_c<T>(p, bz, r + 8, c, acc[i][j][2]);
            store_c<T>(p, bz, r + 8, c + 1, acc[i][j][3]);
        }
}

extern "C" __global__ void __launch_bounds__(128) gemm_f16(GemmParams p) { gemm_mma16<__half>(p); }
extern "C" __global__ void __launch_bounds__(128) gemm_bf16(GemmParams p) { gemm_mma16<__nv_bfloat16>(p); }
