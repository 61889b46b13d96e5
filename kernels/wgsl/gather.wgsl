// Gather along one axis of x viewed as [outer, axis_dim, inner]; indices are already
// checked and made non-negative on the host. Params: [n, axis_dim, inner, n_indices].

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= P(0u)) {
        return;
    }
    let axis_dim = P(1u);
    let inner = P(2u);
    let count = P(3u);
    let r = i % inner;
    let j = (i / inner) % count;
    let o = i / (inner * count);
    y[i] = x[(o * axis_dim + indices[j]) * inner + r];
}
