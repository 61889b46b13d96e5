// Data movement: strided copies (Transpose, Slice, Concat, Expand) and Gather, per
// element size so that every dtype moves.
#include "common.cuh"

// Must match `CopyParams` in crates/crossover-cuda/src/launch.rs. Offsets and strides are
// in elements.
struct CopyParams {
    const void* src;
    void* dst;
    i64 n;
    i64 dims[MAX_RANK];
    i64 ss[MAX_RANK];
    i64 ds[MAX_RANK];
    int rank, _pad;
};

#define COPY(NAME, T)                                                                           \
    extern "C" __global__ void NAME(CopyParams p) {                                             \
        const T* src = (const T*)p.src;                                                         \
        T* dst = (T*)p.dst;                                                                     \
        for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < p.n; i += (i64)gridDim.x * blockDim.x) { \
            i64 rem = i, is = 0, id = 0;                                                        \
            for (int d = p.rank - 1; d >= 0; --d) {                                             \
                const i64 c = rem % p.dims[d];                                                  \
                rem /= p.dims[d];                                                               \
                is += c * p.ss[d];                                                              \
                id += c * p.ds[d];                                                              \
            }                                                                                   \
            dst[id] = src[is];                                                                  \
        }                                                                                       \
    }
COPY(copy_b1, unsigned char)
COPY(copy_b2, unsigned short)
COPY(copy_b4, unsigned int)
COPY(copy_b8, unsigned long long)

// out[o, j, i] = src[o, idx[j], i]; negative indices count from the end. An index out of
// range writes zeros (the host checks indices it knows before launching).
#define GATHER(NAME, T)                                                                         \
    extern "C" __global__ void NAME(const T* src, const i64* idx, T* dst, i64 outer, i64 axis_len, i64 nidx, \
                                    i64 inner) {                                                \
        const i64 total = outer * nidx * inner;                                                 \
        for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < total; i += (i64)gridDim.x * blockDim.x) { \
            const i64 in = i % inner, j = (i / inner) % nidx, o = i / (inner * nidx);          \
            i64 k = idx[j];                                                                     \
            if (k < 0) k += axis_len;                                                           \
            dst[i] = (k >= 0 && k < axis_len) ? src[(o * axis_len + k) * inner + in] : (T)0;   \
        }                                                                                       \
    }
GATHER(gather_b1, unsigned char)
GATHER(gather_b2, unsigned short)
GATHER(gather_b4, unsigned int)
GATHER(gather_b8, unsigned long long)
