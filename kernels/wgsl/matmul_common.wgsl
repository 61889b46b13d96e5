// Shared by matmul.wgsl, matmul_vec4.wgsl and matvec.wgsl (after common.wgsl): the bias
// and output bindings, the batch offsets and the epilogue.
//
// Params: [M, N, K, trans_a, trans_b, has_bias, act, alpha, beta, bias_row_stride,
// bias_col_stride, act_alpha, batch_shape[3] (12..15), a_batch_strides[3] (15..18),
// b_batch_strides[3] (18..21), bias_batch_strides[3] (21..24)]. act: 0 none, 1 relu.

@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

// Element offsets of A, B and the bias for batch `z` (up to three broadcast batch axes).
fn batch_offsets(z: u32) -> vec3<u32> {
    var rem = z;
    var off = vec3<u32>(0u);
    for (var d = 0u; d < 3u; d++) {
        let k = 2u - d;
        let dim = P(12u + k);
        let i = rem % dim;
        rem = rem / dim;
        off += i * vec3<u32>(P(15u + k), P(18u + k), P(21u + k));
    }
    return off;
}

// act(alpha * acc + beta * bias[m, n]).
fn epilogue(acc: f32, m: u32, n: u32, bias_off: u32) -> f32 {
    var v = PF(7u) * acc;
    if (P(5u) != 0u) {
        v += PF(8u) * bias[bias_off + m * P(9u) + n * P(10u)];
    }
    if (P(6u) == 1u) {
        v = max(v, 0.0);
    }
    return v;
}
