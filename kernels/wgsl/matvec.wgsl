// The few-rows case of matmul.wgsl (same parameters and bindings): one invocation per
// output, looping over K. A 64-row tile would compute mostly padding when M is 1 to 4
// (batch-1 requests), so this is the latency path.

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;

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
    let off = batch_offsets(i / (n_len * m_len));
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
    let a_row = off.x + m * a_m;
    let b_col = off.y + n * b_n;
    for (var k = 0u; k < k_len; k++) {
        acc += a[a_row + k * a_k] * b[b_col + k * b_k];
    }
    c[i] = epilogue(acc, m, n, off.z);
}
