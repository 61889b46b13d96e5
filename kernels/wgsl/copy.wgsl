// Strided copy of a region: for each index of `shape`, y[out_off + Σ c·out_stride] =
// x[in_off + Σ c·in_stride]. Transpose, Slice, Expand, Concat and Split are all this.
// Params: [n, rank, in_off, out_off, shape[8], in_strides[8] (i32), out_strides[8]].

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= P(0u)) {
        return;
    }
    let rank = P(1u);
    var rem = i;
    var src = PI(2u);
    var dst = P(3u);
    for (var d = 0u; d < rank; d++) {
        let k = rank - 1u - d;
        let dim = P(4u + k);
        let c = rem % dim;
        rem = rem / dim;
        src += i32(c) * PI(12u + k);
        dst += c * P(20u + k);
    }
    y[dst] = x[u32(src)];
}
