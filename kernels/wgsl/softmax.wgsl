// Softmax / LogSoftmax along one axis of a tensor viewed as [outer, n, inner]; one
// workgroup per (outer, inner) row. Params: [rows, n, inner, log].

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= P(0u)) {
        return;
    }
    let lid = lid3.x;
    let n = P(1u);
    let inner = P(2u);
    let base = (row / inner) * n * inner + row % inner;

    var m = bitcast<f32>(0xff800000u);
    for (var i = lid; i < n; i += 64u) {
        m = max(m, x[base + i * inner]);
    }
    scratch[lid] = m;
    workgroupBarrier();
    let row_max = reduce_max(lid);
    workgroupBarrier();

    var s = 0.0;
    for (var i = lid; i < n; i += 64u) {
        s += exp(x[base + i * inner] - row_max);
    }
    scratch[lid] = s;
    workgroupBarrier();
    let total = reduce_sum(lid);

    let log_mode = P(3u) != 0u;
    let log_total = log(total);
    for (var i = lid; i < n; i += 64u) {
        let v = x[base + i * inner] - row_max;
        y[base + i * inner] = select(exp(v) / total, v - log_total, log_mode);
    }
}
