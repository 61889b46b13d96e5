// matmul.wgsl's ops (same parameters, bindings and grid) for software adapters such as
// llvmpipe, which run a workgroup's invocations as SIMD lanes on the CPU: there workgroup
// memory is plain memory read lane by lane and every barrier is a context switch, so
// staging tiles costs more than it saves. Each invocation computes a 4x4 block of C from
// vec4 loads straight from the operands; the caller guarantees K % 4 == 0, M % 4 == 0
// when A is transposed and N % 4 == 0 when B is not (every vec4 load is aligned).

@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let m_len = P(0u);
    let n_len = P(1u);
    let k_len = P(2u);
    let trans_a = P(3u) != 0u;
    let trans_b = P(4u) != 0u;
    let off = batch_offsets(wid.z);
    let m0 = wid.y * 64u + lid.y * 4u;
    let n0 = wid.x * 64u + lid.x * 4u;
    // Element offsets of the four vec4 each block load reads, and the step per 4 of K.
    var ai: array<u32, 4>;
    var bi: array<u32, 4>;
    var a_step = 4u;
    var b_step = 4u;
    for (var t = 0u; t < 4u; t++) {
        if (trans_a) {
            ai[t] = off.x + t * m_len + min(m0, m_len - 4u);
        } else {
            ai[t] = off.x + min(m0 + t, m_len - 1u) * k_len;
        }
        if (trans_b) {
            bi[t] = off.y + min(n0 + t, n_len - 1u) * k_len;
        } else {
            bi[t] = off.y + t * n_len + min(n0, n_len - 4u);
        }
    }
    if (trans_a) {
        a_step = 4u * m_len;
    }
    if (!trans_b) {
        b_step = 4u * n_len;
    }
    var acc = mat4x4<f32>();
    for (var k = 0u; k < k_len; k += 4u) {
        let ra = mat4x4<f32>(a[ai[0] / 4u], a[ai[1] / 4u], a[ai[2] / 4u], a[ai[3] / 4u]);
        let rb = mat4x4<f32>(b[bi[0] / 4u], b[bi[1] / 4u], b[bi[2] / 4u], b[bi[3] / 4u]);
        // Column t of ablk is A[m0.., k + t]; column j of bblk is B[k.., n0 + j].
        var ablk = ra;
        if (!trans_a) {
            ablk = transpose(ra);
        }
        var bblk = rb;
        if (!trans_b) {
            bblk = transpose(rb);
        }
        acc += ablk * bblk;
        for (var t = 0u; t < 4u; t++) {
            ai[t] += a_step;
            bi[t] += b_step;
        }
    }
    let c_off = wid.z * m_len * n_len;
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + i;
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + j;
            if (m < m_len && n < n_len) {
                c[c_off + m * n_len + n] = epilogue(acc[j][i], m, n, off.z);
            }
        }
    }
}
