// LayerNormalization (and RMSNormalization) over the last n elements of each row; one
// workgroup per row. Params: [rows, n, epsilon, has_bias, rms].

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= P(0u)) {
        return;
    }
    let lid = lid3.x;
    let n = P(1u);
    let eps = PF(2u);
    let has_bias = P(3u) != 0u;
    let rms = P(4u) != 0u;
    let base = row * n;

    var mean = 0.0;
    if (!rms) {
        var s = 0.0;
        for (var i = lid; i < n; i += 64u) {
            s += x[base + i];
        }
        scratch[lid] = s;
        workgroupBarrier();
        mean = reduce_sum(lid) / f32(n);
        workgroupBarrier();
    }
    var q = 0.0;
    for (var i = lid; i < n; i += 64u) {
        let d = x[base + i] - mean;
        q += d * d;
    }
    scratch[lid] = q;
    workgroupBarrier();
    let inv = inverseSqrt(reduce_sum(lid) / f32(n) + eps);
    for (var i = lid; i < n; i += 64u) {
        var v = (x[base + i] - mean) * inv * scale[i];
        if (has_bias) {
            v += bias[i];
        }
        y[base + i] = v;
    }
}
