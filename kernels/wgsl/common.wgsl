// Shared by every kernel (prepended by crossover-kernels): the parameter block and the
// flat invocation index of 1-D kernels dispatched as a 2-D grid of 256-wide groups.

@group(0) @binding(0) var<uniform> params: array<vec4<u32>, 16>;

fn P(i: u32) -> u32 {
    return params[i / 4u][i % 4u];
}

fn PF(i: u32) -> f32 {
    return bitcast<f32>(P(i));
}

fn PI(i: u32) -> i32 {
    return bitcast<i32>(P(i));
}

fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}
