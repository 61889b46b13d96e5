// Softmax and LogSoftmax over the last axis of a [rows, cols] view: one block per row.
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(256) softmax_f32(const float* x, float* y, i64 rows, i64 cols, int log) {
    __shared__ float scratch[32];
    for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
        const float* xr = x + row * cols;
        float* yr = y + row * cols;
        float mx = -INFINITY;
        for (i64 j = threadIdx.x; j < cols; j += blockDim.x) mx = fmaxf(mx, xr[j]);
        mx = block_max(mx, scratch);
        float sum = 0.f;
        for (i64 j = threadIdx.x; j < cols; j += blockDim.x) sum += expf(xr[j] - mx);
        sum = block_sum(sum, scratch);
        if (log) {
            const float lse = logf(sum);
            for (i64 j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = xr[j] - mx - lse;
        } else {
            const float inv = 1.f / sum;
            for (i64 j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = expf(xr[j] - mx) * inv;
        }
        __syncthreads();
    }
}
