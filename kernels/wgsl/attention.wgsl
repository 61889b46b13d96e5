// Scaled dot-product attention: out[i] = softmax(scale * q[i] . kt + mask[i]) v with
// q [batch, sq, d], kt [batch, d, sk] (K already transposed, as the MatMul it replaces
// reads it), v [batch, sk, dv] and the mask broadcast over [b0, b1, sq, sk]
// (batch = b0 * b1). A workgroup takes 4 query rows of one batch; each invocation
// computes 4 rows x 4 keys of scores, then 4 rows x 4 channels of the output, so every
// value it loads serves four products. The rows' weights stay in workgroup memory: sk is
// at most 448 (7 KiB, plus 1 KiB for the reductions).
// Params: [groups, sq, sk, d, dv, scale, has_mask, b1, mask_strides[4] (8..12)].

@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kt: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

// p[j][r]: row r's score, then weight, for key j.
var<workgroup> p: array<vec4<f32>, 448>;
var<workgroup> red: array<vec4<f32>, 64>;

fn reduce4(lid: u32, is_max: bool) -> vec4<f32> {
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red[lid] = select(red[lid] + red[lid + s], max(red[lid], red[lid + s]), is_max);
        }
        workgroupBarrier();
    }
    return red[0];
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid3: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= P(0u)) {
        return;
    }
    let lid = lid3.x;
    let sq = P(1u);
    let sk = P(2u);
    let d = P(3u);
    let dv = P(4u);
    let blocks = (sq + 3u) / 4u;
    let bh = g / blocks;
    let i0 = (g % blocks) * 4u;
    let k_base = bh * d * sk;
    let v_base = bh * sk * dv;
    let m_base = (bh / P(7u)) * P(8u) + (bh % P(7u)) * P(9u);
    // Rows past sq repeat the last one; they are never written.
    var qr: array<u32, 4>;
    var mr: array<u32, 4>;
    for (var r = 0u; r < 4u; r++) {
        let i = min(i0 + r, sq - 1u);
        qr[r] = (bh * sq + i) * d;
        mr[r] = m_base + i * P(10u);
    }

    var row_max = vec4<f32>(bitcast<f32>(0xff800000u));
    for (var j0 = lid * 4u; j0 < sk; j0 += 256u) {
        var kj: array<u32, 4>;
        for (var u = 0u; u < 4u; u++) {
            kj[u] = k_base + min(j0 + u, sk - 1u);
        }
        var s: array<vec4<f32>, 4>;
        for (var t = 0u; t < d; t++) {
            let qv = vec4<f32>(q[qr[0] + t], q[qr[1] + t], q[qr[2] + t], q[qr[3] + t]);
            let kt_row = t * sk;
            for (var u = 0u; u < 4u; u++) {
                s[u] += qv * kt[kj[u] + kt_row];
            }
        }
        for (var u = 0u; u < 4u; u++) {
            let j = j0 + u;
            if (j < sk) {
                var x = s[u] * PF(5u);
                if (P(6u) != 0u) {
                    let mj = j * P(11u);
                    x += vec4<f32>(mask[mr[0] + mj], mask[mr[1] + mj], mask[mr[2] + mj], mask[mr[3] + mj]);
                }
                p[j] = x;
                row_max = max(row_max, x);
            }
        }
    }
    red[lid] = row_max;
    workgroupBarrier();
    row_max = reduce4(lid, true);
    workgroupBarrier();

    var total = vec4<f32>(0.0);
    for (var j = lid; j < sk; j += 64u) {
        let e = exp(p[j] - row_max);
        p[j] = e;
        total += e;
    }
    red[lid] = total;
    workgroupBarrier();
    total = reduce4(lid, false);

    for (var c0 = lid * 4u; c0 < dv; c0 += 256u) {
        var vc: array<u32, 4>;
        for (var u = 0u; u < 4u; u++) {
            vc[u] = v_base + min(c0 + u, dv - 1u);
        }
        var acc: array<vec4<f32>, 4>;
        for (var j = 0u; j < sk; j++) {
            let pj = p[j];
            let v_row = j * dv;
            for (var u = 0u; u < 4u; u++) {
                acc[u] += pj * v[vc[u] + v_row];
            }
        }
        for (var u = 0u; u < 4u; u++) {
            for (var r = 0u; r < 4u; r++) {
                if (c0 + u < dv && i0 + r < sq) {
                    y[(bh * sq + i0 + r) * dv + c0 + u] = acc[u][r] / total[r];
                }
            }
        }
    }
}
