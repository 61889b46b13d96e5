// Reductions, one invocation per output. Params: [n_out, op, kept_rank, reduced_rank,
// reduced_count, 0, 0, 0, kept_shape[8] (8..16), kept_strides[8] (16..24),
// reduced_shape[8] (24..32), reduced_strides[8] (32..40)].
// op: 0 sum, 1 mean, 2 max, 3 min, 4 prod, 5 l1, 6 l2, 7 log_sum, 8 log_sum_exp, 9 sum_square.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

fn reduced_offset(j: u32) -> u32 {
    let rank = P(3u);
    var rem = j;
    var off = 0u;
    for (var d = 0u; d < rank; d++) {
        let k = rank - 1u - d;
        let dim = P(24u + k);
        off += (rem % dim) * P(32u + k);
        rem = rem / dim;
    }
    return off;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= P(0u)) {
        return;
    }
    let op = P(1u);
    let krank = P(2u);
    let count = P(4u);
    var rem = i;
    var base = 0u;
    for (var d = 0u; d < krank; d++) {
        let k = krank - 1u - d;
        let dim = P(8u + k);
        base += (rem % dim) * P(16u + k);
        rem = rem / dim;
    }
    let inf = bitcast<f32>(0x7f800000u);
    var shift = 0.0;
    if (op == 8u) {
        var m = -inf;
        for (var j = 0u; j < count; j++) {
            m = max(m, x[base + reduced_offset(j)]);
        }
        shift = select(m, 0.0, m == -inf || m == inf);
    }
    var acc = 0.0;
    switch op {
        case 2u: { acc = -inf; }
        case 3u: { acc = inf; }
        case 4u: { acc = 1.0; }
        default: {}
    }
    for (var j = 0u; j < count; j++) {
        let v = x[base + reduced_offset(j)];
        switch op {
            case 2u: { acc = max(acc, v); }
            case 3u: { acc = min(acc, v); }
            case 4u: { acc = acc * v; }
            case 5u: { acc += abs(v); }
            case 6u, 9u: { acc += v * v; }
            case 8u: { acc += exp(v - shift); }
            default: { acc += v; }
        }
    }
    switch op {
        case 1u: { acc = acc / f32(count); }
        case 6u: { acc = sqrt(acc); }
        case 7u: { acc = log(acc); }
        case 8u: { acc = log(acc) + shift; }
        default: {}
    }
    y[i] = acc;
}
