// 2-D max and average pooling (1-D runs with H = 1), one invocation per output.
// Params: [NC, H, W, OH, OW, KH, KW, stride_h, stride_w, pad_top (i32), pad_left (i32),
// dil_h, dil_w, mode, total, pad_bottom (i32), pad_right (i32)].
// mode: 0 max, 1 average counting the padding, 2 average over the image only.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= P(14u)) {
        return;
    }
    let h = i32(P(1u));
    let wd = i32(P(2u));
    let oh_n = P(3u);
    let ow_n = P(4u);
    let mode = P(13u);
    let ow = i % ow_n;
    let oh = (i / ow_n) % oh_n;
    let nc = i / (ow_n * oh_n);
    let y0 = i32(oh * P(7u)) - PI(9u);
    let x0 = i32(ow * P(8u)) - PI(10u);
    let base = nc * u32(h * wd);
    let h_end = h + PI(15u);
    let w_end = wd + PI(16u);
    var best = bitcast<f32>(0xff800000u);
    var sum = 0.0;
    var inside = 0u;
    var padded = 0u;
    for (var kh = 0u; kh < P(5u); kh++) {
        let iy = y0 + i32(kh * P(11u));
        for (var kw = 0u; kw < P(6u); kw++) {
            let ix = x0 + i32(kw * P(12u));
            if (iy < h_end && ix < w_end) {
                padded += 1u;
            }
            if (iy < 0 || iy >= h || ix < 0 || ix >= wd) {
                continue;
            }
            let v = x[base + u32(iy * wd + ix)];
            best = max(best, v);
            sum += v;
            inside += 1u;
        }
    }
    switch mode {
        case 0u: { y[i] = best; }
        case 1u: { y[i] = sum / f32(max(padded, 1u)); }
        default: { y[i] = sum / f32(max(inside, 1u)); }
    }
}
