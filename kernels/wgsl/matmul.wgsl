// Batched C = act(alpha * op(A) op(B) + beta * bias), tiled through workgroup memory:
// a 16x16 group computes a 64x64 tile of C, each invocation 4x4 outputs, K in steps of 16.
// Parameters in matmul_common.wgsl; the batch index is workgroup_id.z.

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;

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

    let off = batch_offsets(wid.z);
    let a_off = off.x;
    let b_off = off.y;

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

    let c_off = wid.z * m_len * n_len;
    for (var i = 0u; i < 4u; i++) {
        let m = row0 + lid.y + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let n = col0 + lid.x + 16u * j;
            if (m < m_len && n < n_len) {
                c[c_off + m * n_len + n] = epilogue(acc[i * 4u + j], m, n, off.z);
            }
        }
    }
}
