// The few-rows case of matmul.wgsl (same parameters and bindings): one invocation per
// output, looping over K. A 64-row tile would compute mostly padding when M is 1 to 4
// (batch-1 requests), so this is the latency path.

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    let m_len = P(0u);
    let n_len = P(1u);
    let k_len = P(2u);
    let batches = P(12u) * P(13u) * P(14u);
    if (i >= m_len * n_len * batches) {
        return;
    }
    let n = i % n_len;
    let m = (i / n_len) % m_len;
    var rem = i / (n_len * m_len);
    var a_off = 0u;
    var b_off = 0u;
    var bias_off = 0u;
    for (var d = 0u; d < 3u; d++) {
        let k = 2u - d;
        let dim = P(12u + k);
        let j = rem % dim;
        rem = rem / dim;
        a_off += j * P(15u + k);
        b_off += j * P(18u + k);
        bias_off += j * P(21u + k);
    }
    // Element strides of A along m and k, and of B along k and n.
    var a_m = k_len;
    var a_k = 1u;
    if (P(3u) != 0u) {
        a_m = 1u;
        a_k = m_len;
    }
    var b_k = n_len;
    var b_n = 1u;
    if (P(4u) != 0u) {
        b_k = 1u;
        b_n = k_len;
    }
    var acc = 0.0;
    let a_row = a_off + m * a_m;
    let b_col = b_off + n * b_n;
    for (var k = 0u; k < k_len; k++) {
        acc += a[a_row + k * a_k] * b[b_col + k * b_k];
    }
    var v = PF(7u) * acc;
    if (P(5u) != 0u) {
        v += PF(8u) * bias[bias_off + m * P(9u) + n * P(10u)];
    }
    if (P(6u) == 1u) {
        v = max(v, 0.0);
    }
    c[i] = v;
}
