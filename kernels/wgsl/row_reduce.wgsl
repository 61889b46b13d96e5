// Shared by the one-workgroup-per-row kernels (64 invocations; after common.wgsl): each
// invocation stores its partial in scratch[lid], synchronises, then calls one of these.

var<workgroup> scratch: array<f32, 64>;

fn reduce_max(lid: u32) -> f32 {
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            scratch[lid] = max(scratch[lid], scratch[lid + s]);
        }
        workgroupBarrier();
    }
    return scratch[0];
}

fn reduce_sum(lid: u32) -> f32 {
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            scratch[lid] = scratch[lid] + scratch[lid + s];
        }
        workgroupBarrier();
    }
    return scratch[0];
}
