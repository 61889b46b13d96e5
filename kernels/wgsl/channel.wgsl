// y = x * scale[c] + shift[c] over x viewed as [N, C, inner]: inference BatchNormalization
// with its four statistics folded into two vectors on the host. Params: [n, C, inner].

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read> shift: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= P(0u)) {
        return;
    }
    let c = (i / P(2u)) % P(1u);
    y[i] = x[i] * scale[c] + shift[c];
}
