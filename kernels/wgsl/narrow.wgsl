// f32 to f16: an f16 result is rounded on the device and read back at half the bytes.
// Params: [n].

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f16>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i < P(0u)) {
        y[i] = f16(x[i]);
    }
}
