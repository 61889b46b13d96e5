// Normalizations: LayerNormalization over the trailing `cols` of each row (one block per
// row, two-pass mean/variance) and inference BatchNormalization over NC(HW).
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(256) layernorm_f32(const float* x, const float* gamma, const float* beta,
                                                                 float* y, i64 rows, i64 cols, float eps) {
    __shared__ float scratch[32];
    for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
        const float* xr = x + row * cols;
        float* yr = y + row * cols;
        float s = 0.f;
        for (i64 j = threadIdx.x; j < cols; j += blockDim.x) s += xr[j];
        const float mean = block_sum(s, scratch) / (float)cols;
        float v = 0.f;
        for (i64 j = threadIdx.x; j < cols; j += blockDim.x) {
            const float d = xr[j] - mean;
            v += d * d;
        }
        const float rstd = rsqrtf(block_sum(v, scratch) / (float)cols + eps);
        for (i64 j = threadIdx.x; j < cols; j += blockDim.x) {
            float o = (xr[j] - mean) * rstd;
            if (gamma) o *= gamma[j];
            if (beta) o += beta[j];
            yr[j] = o;
        }
        __syncthreads();
    }
}

extern "C" __global__ void batchnorm_f32(const float* x, const float* scale, const float* bias, const float* mean,
                                         const float* var, float* y, i64 n, i64 c, i64 hw, float eps) {
    const i64 total = n * c * hw;
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < total; i += (i64)gridDim.x * blockDim.x) {
        const i64 ch = (i / hw) % c;
        y[i] = (x[i] - mean[ch]) * rsqrtf(var[ch] + eps) * scale[ch] + bias[ch];
    }
}
