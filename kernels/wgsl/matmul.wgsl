// Batched C = act(alpha * op(A) op(B) + beta * bias), tiled through workgroup memory:
// a 16x16 group computes a 64x64 tile of C, each invocation 4x4 outputs, K in steps of 16.
//
// Params: [M, N, K, trans_a, trans_b, has_bias, act, alpha, beta, bias_row_stride,
// bias_col_stride, act_alpha, batch_shape[3] (12..15), a_batch_strides[3] (15..18),
// b_batch_strides[3] (18..21), bias_batch_strides[3] (21..24)].
// act: 0 none, 1 relu. The batch index is workgroup_id.z.

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

const TILE: u32 = 64u;
const TK: u32 = 16u;

// k-major tiles: as_[k * TILE + m], bs[k * TILE + n].
var<workgroup> as_: array<f32, 1024>;
var<workgroup> bs: array<f32, 1024>;

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let m_len = P(0u);
    let n_len = P(1u);
    let k_len = P(2u);
    let trans_a = P(3u) != 0u;
    let trans_b = P(4u) != 0u;

    // Batch offsets: decompose the batch index over up to three batch axes.
    var rem = wid.z;
    var a_off = 0u;
    var b_off = 0u;
    var bias_off = 0u;
    for (var d = 0u; d < 3u; d++) {
        let k = 2u - d;
        let dim = P(12u + k);
        let i = rem % dim;
        rem = rem / dim;
        a_off += i * P(15u + k);
        b_off += i * P(18u + k);
        bias_off += i * P(21u + k);
    }

    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let t = lid.y * 16u + lid.x;
    var acc: array<f32, 16>;
    for (var k0 = 0u; k0 < k_len; k0 += TK) {
        for (var l = 0u; l < 4u; l++) {
            let e = t + l * 256u;
            let ak = e % TK;
            let am = e / TK;
            let gm = row0 + am;
            let gk = k0 + ak;
            var av = 0.0;
            if (gm < m_len && gk < k_len) {
                av = select(a[a_off + gm * k_len + gk], a[a_off + gk * m_len + gm], trans_a);
            }
            as_[ak * TILE + am] = av;
            let bn = e % TILE;
            let bk = e / TILE;
            let gn = col0 + bn;
            let gk2 = k0 + bk;
            var bv = 0.0;
            if (gn < n_len && gk2 < k_len) {
                bv = select(b[b_off + gk2 * n_len + gn], b[b_off + gn * k_len + gk2], trans_b);
            }
            bs[bk * TILE + bn] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            var ar: array<f32, 4>;
            var br: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                ar[i] = as_[kk * TILE + lid.y + 16u * i];
                br[i] = bs[kk * TILE + lid.x + 16u * i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] += ar[i] * br[j];
                }
            }
        }
        workgroupBarrier();
    }

    let has_bias = P(5u) != 0u;
    let act = P(6u);
    let alpha = PF(7u);
    let beta = PF(8u);
    let c_off = wid.z * m_len * n_len;
    for (var i = 0u; i < 4u; i++) {
        let m = row0 + lid.y + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let n = col0 + lid.x + 16u * j;
            if (m < m_len && n < n_len) {
                var v = alpha * acc[i * 4u + j];
                if (has_bias) {
                    v += beta * bias[bias_off + m * P(9u) + n * P(10u)];
                }
                if (act == 1u) {
                    v = max(v, 0.0);
                }
                c[c_off + m * n_len + n] = v;
            }
        }
    }
}
