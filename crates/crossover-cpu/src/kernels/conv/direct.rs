//! Direct 2-D convolution (stride 1, no dilation) for filters small enough to stay in
//! cache: a row of an output channel is a weighted sum of shifted rows of the padded
//! input, computed in register tiles of [`CO`] channels × one vector of columns. With few
//! channels, im2col and GEMM's packing cost more than the arithmetic; this does neither.

use super::geometry::Geometry;
use super::{for_each_chunk, pool, Epilogue};
use crate::kernels::linalg::gemm::Real;
use crate::kernels::simd::{self, Isa};
use crossover_core::Result;
use rayon::prelude::*;

/// Output channels per register tile: each input vector loaded feeds this many FMAs.
const CO: usize = 8;
/// Widest tile row (AVX-512's f32 lanes); padded rows are sized for it.
const MAX_LANES: usize = 16;
/// Weights of one group (elements) up to which a direct convolution beats im2col and
/// GEMM: every output row passes over all of them, so they must stay in L1/L2.
const MAX_WEIGHTS: usize = 1 << 14;
/// Multiply-adds of one image below which its blocks of channels stay on one thread.
const PARALLEL_MADDS: usize = 1 << 21;

/// Whether the direct kernel applies to a convolution of `mg` output channels per group
/// with `k` weights each: f32 on a CPU with AVX2 or AVX-512, 2-D, stride 1, no dilation,
/// small filters, rows wide enough to fill vectors (1×1 convolutions are plain GEMMs).
pub(super) fn applies<T: 'static>(geo: &Geometry, mg: usize, k: usize) -> bool {
    simd::is_f32::<T>()
        && simd::isa().is_some()
        && geo.grid.len() == 2
        && geo.strides.iter().all(|&s| s == 1)
        && geo.dilations.iter().all(|&d| d == 1)
        && !geo.is_pointwise()
        && mg * k <= MAX_WEIGHTS
        && geo.grid[1] >= 8
}

/// A convolution's sizes, its weights packed per block of output channels (tap-major,
/// [`CO`] channels innermost, zero past the last channel) and its bias per channel.
struct Direct {
    isa: Isa,
    cg: usize,
    mg: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    /// Rows and row length of one padded input channel.
    hp: usize,
    ws: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
    relu: bool,
}

impl Direct {
    fn new(
        isa: Isa,
        geo: &Geometry,
        (groups, cg, mg): (usize, usize, usize),
        w: &[f32],
        bias: Option<Vec<f32>>,
        relu: bool,
    ) -> Self {
        let (kh, kw) = (geo.kernel[0], geo.kernel[1]);
        let (oh, ow) = (geo.grid[0], geo.grid[1]);
        let taps = cg * kh * kw;
        let blocks = mg.div_ceil(CO);
        let mut weights = vec![0.0; groups * blocks * taps * CO];
        for gi in 0..groups {
            for r in 0..mg {
                let (cb, b) = (r / CO, r % CO);
                let src = &w[(gi * mg + r) * taps..][..taps];
                let dst = &mut weights[(gi * blocks + cb) * taps * CO..][..taps * CO];
                for (t, &v) in src.iter().enumerate() {
                    dst[t * CO + b] = v;
                }
            }
        }
        Direct {
            isa,
            cg,
            mg,
            kh,
            kw,
            oh,
            ow,
            hp: oh + kh - 1,
            ws: ow.next_multiple_of(MAX_LANES) + kw - 1,
            weights,
            bias: bias.unwrap_or_else(|| vec![0.0; groups * mg]),
            relu,
        }
    }

    /// One group's input channels `x` (`cg` planes of `geo.image`) inside the zero border
    /// the window reaches.
    fn pad(&self, geo: &Geometry, x: &[f32]) -> Vec<f32> {
        let (ih, iw) = (geo.image[0], geo.image[1]);
        let (top, left) = (geo.pad_begin[0], geo.pad_begin[1]);
        let mut xp = vec![0.0; self.cg * self.hp * self.ws];
        // Padded columns `c0..c1` hold image columns `c0 - left ..`.
        let c0 = left.max(0) as usize;
        let c1 = (left + iw as isize).clamp(0, self.ws as isize) as usize;
        if c0 >= c1 {
            return xp;
        }
        let ix0 = (c0 as isize - left) as usize;
        for ci in 0..self.cg {
            for r in 0..self.hp {
                let iy = r as isize - top;
                if iy < 0 || iy >= ih as isize {
                    continue;
                }
                let src = &x[(ci * ih + iy as usize) * iw + ix0..][..c1 - c0];
                xp[(ci * self.hp + r) * self.ws + c0..][..c1 - c0].copy_from_slice(src);
            }
        }
        xp
    }

    /// Output channels `cb·CO ..` of group `gi` (their full planes, row-major) into `out`.
    fn block(&self, xp: &[f32], gi: usize, cb: usize, out: &mut [f32]) {
        let taps = self.cg * self.kh * self.kw;
        let first = gi * self.mg + cb * CO;
        let valid = CO.min(self.mg - cb * CO);
        assert_eq!(xp.len(), self.cg * self.hp * self.ws, "padded input");
        assert_eq!(out.len(), valid * self.oh * self.ow, "output planes");
        let mut bias = [0.0; CO];
        bias[..valid].copy_from_slice(&self.bias[first..first + valid]);
        let blocks = self.mg.div_ceil(CO);
        let w = &self.weights[(gi * blocks + cb) * taps * CO..][..taps * CO];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa()` found the features; the sizes were checked above, and every
        // tile reads at most `kw - 1 + MAX_LANES` floats from a row start inside a padded
        // row `ws` long (see `Direct::new`).
        unsafe {
            match self.isa {
                Isa::Avx512 => tiles_avx512(self, xp, w, &bias, valid, out),
                Isa::Avx2 => tiles_avx2(self, xp, w, &bias, valid, out),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (xp, w, bias, valid, out);
            unreachable!("no vector ISA outside x86-64");
        }
    }
}

/// The register-tiled loop for one ISA: `$lanes` columns × [`CO`] channels per tile,
/// the accumulators starting at the bias; a last partial tile is stored through a mask.
macro_rules! tiles {
    ($name:ident, $features:literal, $lanes:literal, $zero:ident, $set1:ident, $load:ident,
     $fmadd:ident, $max:ident, |$dst:ident, $n:ident, $v:ident| $store:expr) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name(
            d: &Direct,
            xp: &[f32],
            w: &[f32],
            bias: &[f32; CO],
            valid: usize,
            out: &mut [f32],
        ) {
            use std::arch::x86_64::*;
            let plane = d.oh * d.ow;
            // SAFETY: the features are enabled, and the bounds are those `Direct::block`
            // checked.
            unsafe {
                let zero = $zero();
                for oy in 0..d.oh {
                    for x0 in (0..d.ow).step_by($lanes) {
                        let mut acc = [zero; CO];
                        for (a, &b) in acc.iter_mut().zip(bias) {
                            *a = $set1(b);
                        }
                        for ci in 0..d.cg {
                            for ky in 0..d.kh {
                                let row = xp.as_ptr().add((ci * d.hp + oy + ky) * d.ws + x0);
                                let wr = w.as_ptr().add((ci * d.kh + ky) * d.kw * CO);
                                for kx in 0..d.kw {
                                    let r = $load(row.add(kx));
                                    let wk = wr.add(kx * CO);
                                    for (b, a) in acc.iter_mut().enumerate() {
                                        *a = $fmadd($set1(*wk.add(b)), r, *a);
                                    }
                                }
                            }
                        }
                        let $n = ($lanes).min(d.ow - x0);
                        for (b, &a) in acc.iter().enumerate().take(valid) {
                            let $v = if d.relu { $max(a, zero) } else { a };
                            let $dst = out.as_mut_ptr().add(b * plane + oy * d.ow + x0);
                            $store;
                        }
                    }
                }
            }
        }
    };
}

tiles!(
    tiles_avx512,
    "avx512f",
    16,
    _mm512_setzero_ps,
    _mm512_set1_ps,
    _mm512_loadu_ps,
    _mm512_fmadd_ps,
    _mm512_max_ps,
    |dst, n, v| crate::kernels::simd::store_first_avx512(dst, n, v)
);

tiles!(
    tiles_avx2,
    "avx2,fma",
    8,
    _mm256_setzero_ps,
    _mm256_set1_ps,
    _mm256_loadu_ps,
    _mm256_fmadd_ps,
    _mm256_max_ps,
    |dst, n, v| crate::kernels::simd::store_first_avx2(dst, n, v)
);

/// `conv_with` by direct convolution: `y` is `n` images × `groups·mg` channels of the
/// output grid (`max_pool`'s when the epilogue pools, `geo`'s otherwise). Only for what
/// [`applies`] accepts.
pub(super) fn conv<T: Real>(
    geo: &Geometry,
    max_pool: Option<&Geometry>,
    (x, w): (&[T], &[T]),
    (n, groups, cg, mg): (usize, usize, usize, usize),
    e: &Epilogue<T>,
    y: &mut [T],
) -> Result<()> {
    let (Some(isa), Some(x), Some(w), Some(y)) = (
        simd::isa(),
        simd::as_f32(x),
        simd::as_f32(w),
        simd::as_f32_mut(y),
    ) else {
        unreachable!("`applies` admits only f32 on a vector ISA");
    };
    let bias = e.bias.as_ref().map(|b| {
        let b: Vec<T> = b.iter().copied().collect();
        simd::as_f32(&b).expect("T is f32").to_vec()
    });
    let d = Direct::new(isa, geo, (groups, cg, mg), w, bias, e.relu);
    let img = geo.image_size();
    let p = d.oh * d.ow;
    let op = max_pool.map_or(p, |pg| pg.grid_size());
    let tasks = n * groups;
    let blocks_parallel = tasks == 1 && mg * cg * geo.kernel_size() * p >= PARALLEL_MADDS;
    let plane_max = max_pool.map(pool::PlaneMax::new);
    let block = |gi: usize, xp: &[f32], (cb, out): (usize, &mut [f32])| match &plane_max {
        None => d.block(xp, gi, cb, out),
        Some(pm) => {
            let planes = out.len() / op.max(1);
            let mut full = vec![0.0; planes * p];
            d.block(xp, gi, cb, &mut full);
            let mut down = Vec::new();
            for (plane, dst) in full.chunks(p).zip(out.chunks_mut(op)) {
                pm.apply(plane, dst, &mut down);
            }
        }
    };
    for_each_chunk(y, mg * op, tasks > 1, |(t, out)| {
        let (ni, gi) = (t / groups, t % groups);
        let xp = d.pad(geo, &x[(ni * groups + gi) * cg * img..][..cg * img]);
        let chunks = out.chunks_mut(CO * op).enumerate();
        if blocks_parallel {
            chunks
                .collect::<Vec<_>>()
                .into_par_iter()
                .for_each(|c| block(gi, &xp, c));
        } else {
            chunks.for_each(|c| block(gi, &xp, c));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::super::{conv_with, Epilogue};
    use super::*;
    use crossover_core::op::conv::{AutoPad, ConvAttrs, PoolAttrs, Window};
    use ndarray::{ArrayD, IxDyn};

    fn window(pads: &[i64], kernel: Option<Vec<i64>>, strides: Option<Vec<i64>>) -> Window {
        Window {
            auto_pad: AutoPad::NotSet,
            pads: Some(pads.to_vec()),
            kernel_shape: kernel,
            strides,
            ..Default::default()
        }
    }

    /// The convolution summed in f64, tap by tap, plus bias, clamped at zero if `relu`.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        x: &ArrayD<f32>,
        w: &ArrayD<f32>,
        b: &ArrayD<f32>,
        g: usize,
        pads: &[i64],
        relu: bool,
    ) -> ArrayD<f64> {
        let (n, c, ih, iw) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
        let (m, kh, kw) = (w.shape()[0], w.shape()[2], w.shape()[3]);
        let (cg, mg) = (c / g, m / g);
        let oh = ih + pads[0] as usize + pads[2] as usize - kh + 1;
        let ow = iw + pads[1] as usize + pads[3] as usize - kw + 1;
        ArrayD::from_shape_fn(IxDyn(&[n, m, oh, ow]), |i| {
            let (ni, co, oy, ox) = (i[0], i[1], i[2], i[3]);
            let mut s = b[[co]] as f64;
            for ci in 0..cg {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let iy = (oy + ky) as isize - pads[0] as isize;
                        let ix = (ox + kx) as isize - pads[1] as isize;
                        if (0..ih as isize).contains(&iy) && (0..iw as isize).contains(&ix) {
                            let xv = x[[ni, co / mg * cg + ci, iy as usize, ix as usize]];
                            s += xv as f64 * w[[co, ci, ky, kx]] as f64;
                        }
                    }
                }
            }
            if relu {
                s.max(0.0)
            } else {
                s
            }
        })
    }

    fn ramp(shape: &[usize], seed: usize) -> ArrayD<f32> {
        let mut k = seed;
        ArrayD::from_shape_fn(IxDyn(shape), |_| {
            k = (k * 1103515245 + 12345) % (1 << 31);
            (k % 2001) as f32 / 1000.0 - 1.0
        })
    }

    #[test]
    fn direct_convolution_matches_the_sum_over_taps() {
        // (n, c, m, group, h, w, kh, kw, pads): vector tails, a last block of fewer than
        // CO channels, groups, asymmetric pads, and one image big enough to split its
        // blocks across threads.
        let cases: &[(
            usize,
            usize,
            usize,
            usize,
            usize,
            usize,
            usize,
            usize,
            [i64; 4],
        )] = &[
            (1, 3, 16, 1, 32, 32, 3, 3, [1, 1, 1, 1]),
            (2, 16, 32, 1, 16, 16, 3, 3, [1, 1, 1, 1]),
            (3, 2, 3, 1, 9, 17, 3, 3, [0, 2, 1, 0]),
            (1, 4, 20, 2, 11, 33, 5, 3, [2, 1, 2, 1]),
            (2, 6, 12, 3, 7, 8, 1, 3, [0, 1, 0, 1]),
            (1, 16, 32, 1, 64, 64, 3, 3, [1, 1, 1, 1]),
        ];
        for (i, &(n, c, m, g, h, wd, kh, kw, pads)) in cases.iter().enumerate() {
            let x = ramp(&[n, c, h, wd], i);
            let w = ramp(&[m, c / g, kh, kw], i + 7);
            let b = ramp(&[m], i + 3);
            let attrs = ConvAttrs {
                window: window(&pads, None, None),
                group: g as i64,
            };
            let geo = Geometry::forward(&attrs.window, &[h, wd], &[kh, kw], false).unwrap();
            // Without AVX2 the same cases check the im2col path instead.
            assert_eq!(
                applies::<f32>(&geo, m / g, c / g * kh * kw),
                simd::isa().is_some(),
                "case {i} takes the direct path"
            );
            for relu in [false, true] {
                let e = Epilogue {
                    bias: Some(b.view()),
                    relu,
                    max_pool: None,
                };
                let y = conv_with(x.view(), w.view(), &attrs, &e).unwrap();
                let want = reference(&x, &w, &b, g, &pads, relu);
                assert_eq!(y.shape(), want.shape(), "case {i}");
                for (got, want) in y.iter().zip(want.iter()) {
                    assert!(
                        (*got as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "case {i} relu {relu}: {got} against {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn direct_convolution_pools_each_plane() {
        let (x, w, b) = (
            ramp(&[2, 3, 13, 18], 1),
            ramp(&[10, 3, 3, 3], 2),
            ramp(&[10], 3),
        );
        let attrs = ConvAttrs {
            window: window(&[1, 1, 1, 1], None, None),
            group: 1,
        };
        let full = reference(&x, &w, &b, 1, &[1, 1, 1, 1], true);
        // On the 13×18 conv output: 3×2 windows with a row and a column of padding at
        // the end in ceil mode (a last window starting in the padding is dropped), and
        // 2×2 windows with padding first, whose first column holds one tap.
        let pools: [([i64; 4], [usize; 2], [usize; 2], bool); 2] = [
            ([0, 0, 1, 1], [3, 2], [7, 9], true),
            ([1, 1, 0, 0], [2, 2], [7, 9], false),
        ];
        for (pads, [kh, kw], grid, ceil_mode) in pools {
            let pa = PoolAttrs {
                window: window(&pads, Some(vec![kh as i64, kw as i64]), Some(vec![2, 2])),
                ceil_mode,
            };
            let pooled = Epilogue {
                bias: Some(b.view()),
                relu: true,
                max_pool: Some(&pa),
            };
            let y = conv_with(x.view(), w.view(), &attrs, &pooled).unwrap();
            assert_eq!(y.shape(), &[2, 10, grid[0], grid[1]], "pads {pads:?}");
            for (i, got) in y.indexed_iter() {
                let mut want = f64::NEG_INFINITY;
                for ky in 0..kh {
                    for kx in 0..kw {
                        let r = (i[2] * 2 + ky) as isize - pads[0] as isize;
                        let c = (i[3] * 2 + kx) as isize - pads[1] as isize;
                        if (0..13).contains(&r) && (0..18).contains(&c) {
                            want = want.max(full[[i[0], i[1], r as usize, c as usize]]);
                        }
                    }
                }
                assert!(
                    (*got as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "pads {pads:?} at {i:?}: {got} against {want}"
                );
            }
        }
    }
}
