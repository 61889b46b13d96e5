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
/// Multiply-adds of one image below which its blocks of channels stay on one thread:
/// about 3 µs of one core's FMAs, against the microseconds a split costs on lingering
/// workers.
const PARALLEL_MADDS: usize = 1 << 18;

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

/// A convolution's filters packed per block of output channels (tap-major, [`CO`]
/// channels innermost, zero past the last channel): once at compile time for constant
/// weights, or per call otherwise.
pub(crate) struct Filters {
    isa: Isa,
    groups: usize,
    cg: usize,
    mg: usize,
    kh: usize,
    kw: usize,
    packed: Vec<f32>,
}

impl Filters {
    /// The packing of `w` (`groups·mg × cg × kh × kw`, row-major), or `None` where the
    /// direct kernel never applies to it.
    pub(crate) fn new(w: &[f32], shape: &[usize], groups: usize) -> Option<Filters> {
        Self::for_isa(simd::isa()?, w, shape, groups)
    }

    fn for_isa(isa: Isa, w: &[f32], shape: &[usize], groups: usize) -> Option<Filters> {
        let &[m, cg, kh, kw] = shape else {
            return None;
        };
        if groups == 0 || m % groups != 0 || w.len() != m * cg * kh * kw {
            return None;
        }
        let mg = m / groups;
        let taps = cg * kh * kw;
        if mg * taps > MAX_WEIGHTS {
            return None;
        }
        let blocks = mg.div_ceil(CO);
        let mut packed = vec![0.0; groups * blocks * taps * CO];
        for gi in 0..groups {
            for r in 0..mg {
                let (cb, b) = (r / CO, r % CO);
                let src = &w[(gi * mg + r) * taps..][..taps];
                let dst = &mut packed[(gi * blocks + cb) * taps * CO..][..taps * CO];
                for (t, &v) in src.iter().enumerate() {
                    dst[t * CO + b] = v;
                }
            }
        }
        Some(Filters {
            isa,
            groups,
            cg,
            mg,
            kh,
            kw,
            packed,
        })
    }

    fn fits(&self, groups: usize, cg: usize, mg: usize, kernel: &[usize]) -> bool {
        (self.groups, self.cg, self.mg) == (groups, cg, mg) && [self.kh, self.kw] == kernel
    }
}

/// One call's sizes around its [`Filters`], and the bias per channel.
struct Direct<'a> {
    filters: &'a Filters,
    oh: usize,
    ow: usize,
    /// Rows and row length of one padded input channel.
    hp: usize,
    ws: usize,
    bias: &'a [f32],
    relu: bool,
}

impl<'a> Direct<'a> {
    fn new(geo: &Geometry, filters: &'a Filters, bias: &'a [f32], relu: bool) -> Self {
        let (oh, ow) = (geo.grid[0], geo.grid[1]);
        let (kh, kw) = (filters.kh, filters.kw);
        Direct {
            filters,
            oh,
            ow,
            hp: oh + kh - 1,
            ws: ow.next_multiple_of(MAX_LANES) + kw - 1,
            bias,
            relu,
        }
    }

    /// One group's input channels `x` (`cg` planes of `geo.image`) inside the zero border
    /// the window reaches.
    fn pad(&self, geo: &Geometry, x: &[f32]) -> Vec<f32> {
        let (ih, iw) = (geo.image[0], geo.image[1]);
        let (top, left) = (geo.pad_begin[0], geo.pad_begin[1]);
        let cg = self.filters.cg;
        let mut xp = vec![0.0; cg * self.hp * self.ws];
        // Padded columns `c0..c1` hold image columns `c0 - left ..`.
        let c0 = left.max(0) as usize;
        let c1 = (left + iw as isize).clamp(0, self.ws as isize) as usize;
        if c0 >= c1 {
            return xp;
        }
        let ix0 = (c0 as isize - left) as usize;
        for ci in 0..cg {
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
        let f = self.filters;
        let taps = f.cg * f.kh * f.kw;
        let first = gi * f.mg + cb * CO;
        let valid = CO.min(f.mg - cb * CO);
        assert_eq!(xp.len(), f.cg * self.hp * self.ws, "padded input");
        assert_eq!(out.len(), valid * self.oh * self.ow, "output planes");
        let mut bias = [0.0; CO];
        bias[..valid].copy_from_slice(&self.bias[first..first + valid]);
        let blocks = f.mg.div_ceil(CO);
        let w = &f.packed[(gi * blocks + cb) * taps * CO..][..taps * CO];
        #[cfg(target_arch = "x86_64")]
        {
            // AVX2's 16 registers hold one row's 8 accumulators; AVX-512's 32 hold three.
            let rows = match f.isa {
                Isa::Avx512 => 3,
                Isa::Avx2 => 1,
            };
            let mut oy = 0;
            while oy < self.oh {
                let r = rows.min(self.oh - oy);
                // SAFETY: `isa()` found the features; the sizes were checked above, rows
                // `oy..oy + r` are output rows, and every tile reads at most
                // `kw - 1 + MAX_LANES` floats from a row start inside a padded row `ws`
                // long (see `Direct::new`).
                unsafe {
                    match (f.isa, r) {
                        (Isa::Avx512, 3) => tiles_avx512::<3>(self, xp, w, &bias, valid, oy, out),
                        (Isa::Avx512, 2) => tiles_avx512::<2>(self, xp, w, &bias, valid, oy, out),
                        (Isa::Avx512, _) => tiles_avx512::<1>(self, xp, w, &bias, valid, oy, out),
                        (Isa::Avx2, _) => tiles_avx2::<1>(self, xp, w, &bias, valid, oy, out),
                    }
                }
                oy += r;
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (xp, w, bias, valid, out);
            unreachable!("no vector ISA outside x86-64");
        }
    }
}

/// The register-tiled loop for one ISA: `R` output rows × `$lanes` columns × [`CO`]
/// channels per tile (each weight broadcast feeds `R` FMAs, each row loaded [`CO`]),
/// the accumulators starting at the bias; a last partial tile is stored through a mask.
macro_rules! tiles {
    ($name:ident, $features:literal, $lanes:literal, $zero:ident, $set1:ident, $load:ident,
     $fmadd:ident, $max:ident, |$dst:ident, $n:ident, $v:ident| $store:expr) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name<const R: usize>(
            d: &Direct,
            xp: &[f32],
            w: &[f32],
            bias: &[f32; CO],
            valid: usize,
            oy: usize,
            out: &mut [f32],
        ) {
            use std::arch::x86_64::*;
            let plane = d.oh * d.ow;
            let (cg, kh, kw) = (d.filters.cg, d.filters.kh, d.filters.kw);
            // SAFETY: the features are enabled, and the bounds are those `Direct::block`
            // checked.
            unsafe {
                let zero = $zero();
                for x0 in (0..d.ow).step_by($lanes) {
                    let mut acc = [[zero; CO]; R];
                    for rows in acc.iter_mut() {
                        for (a, &b) in rows.iter_mut().zip(bias) {
                            *a = $set1(b);
                        }
                    }
                    for ci in 0..cg {
                        for ky in 0..kh {
                            let row = xp.as_ptr().add((ci * d.hp + oy + ky) * d.ws + x0);
                            let wr = w.as_ptr().add((ci * kh + ky) * kw * CO);
                            for kx in 0..kw {
                                let mut xs = [zero; R];
                                for (r, x) in xs.iter_mut().enumerate() {
                                    *x = $load(row.add(r * d.ws + kx));
                                }
                                let wk = wr.add(kx * CO);
                                for b in 0..CO {
                                    let wv = $set1(*wk.add(b));
                                    for (a, &x) in acc.iter_mut().zip(&xs) {
                                        a[b] = $fmadd(wv, x, a[b]);
                                    }
                                }
                            }
                        }
                    }
                    let $n = ($lanes).min(d.ow - x0);
                    for (r, rows) in acc.iter().enumerate() {
                        for (b, &a) in rows.iter().enumerate().take(valid) {
                            let $v = if d.relu { $max(a, zero) } else { a };
                            let $dst = out.as_mut_ptr().add(b * plane + (oy + r) * d.ow + x0);
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
/// output grid (`max_pool`'s when the epilogue pools, `geo`'s otherwise), with `packed`
/// the filters of `w` when they were packed ahead. Only for what [`applies`] accepts.
pub(super) fn conv<T: Real>(
    geo: &Geometry,
    max_pool: Option<&Geometry>,
    (x, w, packed): (&[T], &[T], Option<&Filters>),
    (n, groups, cg, mg): (usize, usize, usize, usize),
    e: &Epilogue<T>,
    y: &mut [T],
) -> Result<()> {
    let (Some(x), Some(w), Some(y)) = (simd::as_f32(x), simd::as_f32(w), simd::as_f32_mut(y))
    else {
        unreachable!("`applies` admits only f32 on a vector ISA");
    };
    let fresh;
    let filters = match packed {
        Some(f) if f.fits(groups, cg, mg, &geo.kernel) => f,
        _ => {
            let shape = [groups * mg, cg, geo.kernel[0], geo.kernel[1]];
            fresh = Filters::new(w, &shape, groups).expect("`applies` checked the filter size");
            &fresh
        }
    };
    let bias: Vec<T> = match &e.bias {
        Some(b) => b.iter().copied().collect(),
        None => vec![T::zero(); groups * mg],
    };
    let bias = simd::as_f32(&bias).expect("T is f32");
    let d = Direct::new(geo, filters, bias, e.relu);
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
            // Filters packed per call, then ahead for each ISA this CPU runs.
            let ws = w.as_slice().unwrap();
            let packings = std::iter::once(None).chain(
                simd::isas_here("direct convolutions")
                    .into_iter()
                    .map(|isa| Filters::for_isa(isa, ws, w.shape(), g)),
            );
            for filters in packings {
                let isa = filters.as_ref().map(|f| f.isa);
                for relu in [false, true] {
                    let e = Epilogue {
                        bias: Some(b.view()),
                        relu,
                        max_pool: None,
                    };
                    let y = conv_with(x.view(), w.view(), filters.as_ref(), &attrs, &e).unwrap();
                    let want = reference(&x, &w, &b, g, &pads, relu);
                    assert_eq!(y.shape(), want.shape(), "case {i}");
                    for (got, want) in y.iter().zip(want.iter()) {
                        assert!(
                            (*got as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()),
                            "case {i} {isa:?} relu {relu}: {got} against {want}"
                        );
                    }
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
        // Then 2×2 squares from the corner (the last row left out), and the same in ceil
        // mode, whose last row of windows holds one row.
        let pools: [([i64; 4], [usize; 2], [usize; 2], bool); 4] = [
            ([0, 0, 1, 1], [3, 2], [7, 9], true),
            ([1, 1, 0, 0], [2, 2], [7, 9], false),
            ([0, 0, 0, 0], [2, 2], [6, 9], false),
            ([0, 0, 0, 0], [2, 2], [7, 9], true),
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
            let y = conv_with(x.view(), w.view(), None, &attrs, &pooled).unwrap();
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
