// Elementwise ops on f32: unary maps, binary ops with numpy broadcasting (up to rank 6)
// and dtype casts.
#include "common.cuh"

// Unary op codes: `UnaryOp` in kernels/src/cuda.rs.
__device__ __forceinline__ float unary(float x, int op, float alpha, float beta) {
    switch (op) {
    case 0: return x > 0.f ? x : 0.f;                                  // Relu
    case 1: return apply_act(x, ACT_GELU_ERF);                          // Gelu
    case 2: return apply_act(x, ACT_GELU_TANH);                         // Gelu tanh
    case 3: return erff(x);                                             // Erf
    case 4: return expf(x);                                             // Exp
    case 5: return logf(x);                                             // Log
    case 6: return tanhf(x);                                            // Tanh
    case 7: return 1.f / (1.f + expf(-x));                              // Sigmoid
    case 8: return sqrtf(x);                                            // Sqrt
    case 9: return -x;                                                  // Neg
    case 10: return fabsf(x);                                           // Abs
    case 11: return 1.f / x;                                            // Reciprocal
    case 12: return x >= 0.f ? x : alpha * x;                           // LeakyRelu
    case 13: return fminf(fmaxf(x, alpha), beta);                       // Clip
    case 14: return x;                                                  // Identity
    case 15: return x * (1.f / (1.f + expf(-x)));                       // SiLU / Swish(1)
    case 16: return floorf(x);                                          // Floor
    case 17: return ceilf(x);                                           // Ceil
    default: return x;
    }
}

extern "C" __global__ void unary_f32(const float* x, float* y, i64 n, int op, float alpha, float beta) {
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x)
        y[i] = unary(x[i], op, alpha, beta);
}

// Must match `BinaryParams` in crates/crossover-cuda/src/launch.rs.
struct BinaryParams {
    const float* a;
    const float* b;
    float* y;
    i64 n;
    i64 dims[MAX_RANK];
    i64 sa[MAX_RANK];
    i64 sb[MAX_RANK];
    int rank, op;
};

// Binary op codes: `BinaryOp` in kernels/src/cuda.rs.
__device__ __forceinline__ float binary(float a, float b, int op) {
    switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a / b;
    case 4: return powf(a, b);
    case 5: return fmaxf(a, b);
    case 6: return fminf(a, b);
    default: return a;
    }
}

extern "C" __global__ void binary_f32(BinaryParams p) {
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < p.n; i += (i64)gridDim.x * blockDim.x) {
        i64 rem = i, ia = 0, ib = 0;
        for (int d = p.rank - 1; d >= 0; --d) {
            const i64 c = rem % p.dims[d];
            rem /= p.dims[d];
            ia += c * p.sa[d];
            ib += c * p.sb[d];
        }
        p.y[i] = binary(p.a[ia], p.b[ib], p.op);
    }
}

#define CAST(NAME, FROM, TO, EXPR)                                                              \
    extern "C" __global__ void NAME(const FROM* x, TO* y, i64 n) {                              \
        for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) { \
            const FROM v = x[i];                                                                \
            y[i] = EXPR;                                                                        \
        }                                                                                       \
    }
CAST(cast_i64_f32, i64, float, (float)v)
CAST(cast_i32_f32, int, float, (float)v)
CAST(cast_u8_f32, unsigned char, float, (float)v)
CAST(cast_f32_f16, float, __half, __float2half_rn(v))
CAST(cast_f16_f32, __half, float, __half2float(v))
CAST(cast_f32_bf16, float, __nv_bfloat16, __float2bfloat16_rn(v))
CAST(cast_bf16_f32, __nv_bfloat16, float, __bfloat162float(v))
