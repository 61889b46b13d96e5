// y = a op b with numpy broadcasting. Params: [n, op, rank, 0, shape[8], a_strides[8],
// b_strides[8]] where a broadcast axis has stride 0.

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

fn is_int(v: f32) -> bool {
    return v == floor(v);
}

// WGSL leaves pow undefined for x <= 0; ONNX follows C's pow.
fn pow_c(x: f32, e: f32) -> f32 {
    if (e == 0.0) {
        return 1.0;
    }
    if (x == 0.0) {
        return select(0.0, bitcast<f32>(0x7f800000u), e < 0.0);
    }
    if (x < 0.0) {
        if (!is_int(e)) {
            return bitcast<f32>(0x7fc00000u);
        }
        let r = pow(-x, e);
        let odd = abs(e - 2.0 * floor(e * 0.5)) == 1.0;
        return select(r, -r, odd);
    }
    return pow(x, e);
}

fn apply(op: u32, u: f32, v: f32) -> f32 {
    switch op {
        case 0u: { return u + v; }
        case 1u: { return u - v; }
        case 2u: { return u * v; }
        case 3u: { return u / v; }
        case 4u: { return pow_c(u, v); }
        case 5u: { return max(u, v); }
        case 6u: { return min(u, v); }
        case 7u: { return select(u, u * v, u < 0.0); }
        case 8u: { return u - v * trunc(u / v); }
        default: { return u; }
    }
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= P(0u)) {
        return;
    }
    let rank = P(2u);
    var rem = i;
    var ia = 0u;
    var ib = 0u;
    for (var d = 0u; d < rank; d++) {
        let k = rank - 1u - d;
        let dim = P(4u + k);
        let c = rem % dim;
        rem = rem / dim;
        ia += c * P(12u + k);
        ib += c * P(20u + k);
    }
    y[i] = apply(P(1u), a[ia], b[ib]);
}
