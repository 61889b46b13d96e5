// f16 to f32: an f16 tensor uploaded as it is becomes the f32 buffer the kernels read.
// Params: [n].

@group(0) @binding(1) var<storage, read> x: array<f16>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i < P(0u)) {
        y[i] = f32(x[i]);
    }
}
