// Reductions over the middle axis of an [outer, r, inner] view, one thread per output.
// Op codes: `ReduceKind` in kernels/src/cuda.rs.
#include "common.cuh"

extern "C" __global__ void reduce_f32(const float* x, float* y, i64 outer, i64 r, i64 inner, int op) {
    const i64 total = outer * inner;
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < total; i += (i64)gridDim.x * blockDim.x) {
        const i64 o = i / inner, in = i % inner;
        const float* base = x + o * r * inner + in;
        float acc;
        switch (op) {
        case 2: acc = -INFINITY; break; // max
        case 3: acc = INFINITY; break;  // min
        case 4: acc = 1.f; break;       // prod
        default: acc = 0.f;
        }
        for (i64 j = 0; j < r; ++j) {
            const float v = base[j * inner];
            switch (op) {
            case 2: acc = fmaxf(acc, v); break;
            case 3: acc = fminf(acc, v); break;
            case 4: acc *= v; break;
            case 5: acc += v * v; break;
            default: acc += v;
            }
        }
        if (op == 1) acc = r > 0 ? acc / (float)r : NAN; // mean of nothing
        y[i] = acc;
    }
}
