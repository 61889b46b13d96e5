// Direct 2-D convolution (1-D runs with H = 1), one invocation per output, with groups,
// strides, dilations, padding and a fused bias. Params: [N, C, H, W, M, OH, OW, KH, KW,
// stride_h, stride_w, pad_top (i32), pad_left (i32), dil_h, dil_w, group, has_bias, total].

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= P(17u)) {
        return;
    }
    let c_in = P(1u);
    let h = i32(P(2u));
    let wd = i32(P(3u));
    let m_out = P(4u);
    let oh_n = P(5u);
    let ow_n = P(6u);
    let kh_n = P(7u);
    let kw_n = P(8u);
    let groups = P(15u);
    let ow = i % ow_n;
    let oh = (i / ow_n) % oh_n;
    let m = (i / (ow_n * oh_n)) % m_out;
    let n = i / (ow_n * oh_n * m_out);
    let cpg = c_in / groups;
    let g = m / (m_out / groups);
    let y0 = i32(oh * P(9u)) - PI(11u);
    let x0 = i32(ow * P(10u)) - PI(12u);
    var acc = 0.0;
    if (P(16u) != 0u) {
        acc = bias[m];
    }
    for (var cc = 0u; cc < cpg; cc++) {
        let c = g * cpg + cc;
        let x_base = (n * c_in + c) * u32(h * wd);
        let w_base = (m * cpg + cc) * kh_n * kw_n;
        for (var kh = 0u; kh < kh_n; kh++) {
            let iy = y0 + i32(kh * P(13u));
            if (iy < 0 || iy >= h) {
                continue;
            }
            for (var kw = 0u; kw < kw_n; kw++) {
                let ix = x0 + i32(kw * P(14u));
                if (ix < 0 || ix >= wd) {
                    continue;
                }
                acc += x[x_base + u32(iy * wd + ix)] * w[w_base + kh * kw_n + kw];
            }
        }
    }
    y[i] = acc;
}
