//! Direct 2-D convolution (stride 1, no dilation) for filters small enough to stay in
//! cache: a row of an output channel is a weighted sum of shifted rows of the padded
//! input, computed in register tiles of [`CO`] channels × one vector of columns. With few
//! channels, im2col and GEMM's packing cost more than the arithmetic; this does neither.
//! A 2×2 max pool that follows is taken inside the AVX-512 tiles, so the full-size
//! planes are never stored.

use super::geometry::Geometry;
use super::{for_each_chunk, pool, Epilogue};
use crate::kernels::linalg::gemm::Real;
use crate::kernels::linalg::packed::{share, Out};
use crate::kernels::simd::{self, Isa};
use crossover_core::Result;
use std::cell::Cell;
use std::sync::Mutex;

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
#[derive(Clone)]
struct Direct<'a> {
    filters: &'a Filters,
    oh: usize,
    ow: usize,
    /// The output rows computed: all of them, or one worker's band.
    rows: std::ops::Range<usize>,
    /// Row length of one padded input channel.
    ws: usize,
    bias: &'a [f32],
    relu: bool,
    /// The grid of the 2×2 max pool the tiles take (see [`pooled_tiles_avx512`]).
    pooled: Option<[usize; 2]>,
}

impl<'a> Direct<'a> {
    fn new(
        geo: &Geometry,
        max_pool: Option<&Geometry>,
        filters: &'a Filters,
        bias: &'a [f32],
        relu: bool,
    ) -> Self {
        let (oh, ow) = (geo.grid[0], geo.grid[1]);
        let pooled = max_pool
            .filter(|pg| filters.isa == Isa::Avx512 && pool::corner_squares(pg))
            .map(|pg| [pg.grid[0], pg.grid[1]]);
        let kw = filters.kw;
        Direct {
            filters,
            oh,
            ow,
            rows: 0..oh,
            ws: ow.next_multiple_of(MAX_LANES) + kw - 1,
            bias,
            relu,
            pooled,
        }
    }

    /// This call for output rows `rows` alone, which it pads and computes by itself.
    fn band(&self, rows: std::ops::Range<usize>) -> Self {
        Direct {
            rows,
            ..self.clone()
        }
    }

    /// Rows of one padded input channel held, from padded row `rows.start`: those the
    /// output rows' windows reach.
    fn hp(&self) -> usize {
        self.rows.len() + self.filters.kh - 1
    }

    /// Elements of one output plane as the tiles store it.
    fn plane(&self) -> usize {
        self.pooled.map_or(self.oh * self.ow, |[ph, pw]| ph * pw)
    }

    /// One group's input channels `x` (`cg` planes of `geo.image`) inside the zero border
    /// the window reaches, into `xp`.
    fn pad(&self, geo: &Geometry, x: &[f32], xp: &mut Vec<f32>) {
        let (ih, iw) = (geo.image[0], geo.image[1]);
        let (top, left) = (geo.pad_begin[0], geo.pad_begin[1]);
        let (cg, ws) = (self.filters.cg, self.ws);
        // Padded columns `c0..c1` hold image columns `c0 - left ..`.
        let c1 = (left + iw as isize).clamp(0, ws as isize) as usize;
        let c0 = (left.max(0) as usize).min(c1);
        let ix0 = (c0 as isize - left) as usize;
        // Each element is written once, a row at a time: zeroing the buffer first cost
        // as much as the copy, and growing it element-wise more.
        let hp = self.hp();
        let len = cg * hp * ws;
        xp.clear();
        xp.reserve(len);
        let zero = std::mem::MaybeUninit::new(0.0);
        for (i, row) in xp.spare_capacity_mut()[..len]
            .chunks_exact_mut(ws)
            .enumerate()
        {
            let (ci, iy) = (i / hp, (self.rows.start + i % hp) as isize - top);
            if (0..ih as isize).contains(&iy) && c0 < c1 {
                let src = &x[(ci * ih + iy as usize) * iw + ix0..][..c1 - c0];
                row[..c0].fill(zero);
                for (d, &v) in row[c0..c1].iter_mut().zip(src) {
                    d.write(v);
                }
                row[c1..].fill(zero);
            } else {
                row.fill(zero);
            }
        }
        // SAFETY: every row of the first `len` was written above.
        unsafe { xp.set_len(len) };
    }

    /// Output channels `cb·CO ..` of group `gi` (their planes, row-major, pooled where
    /// the tiles pool) into `out`.
    fn block(&self, xp: &[f32], gi: usize, cb: usize, out: &mut [f32]) {
        let valid = CO.min(self.filters.mg - cb * CO);
        assert_eq!(out.len(), valid * self.plane(), "output planes");
        // SAFETY: `out` holds the block's planes, borrowed mutably.
        unsafe { self.block_into(xp, gi, cb, out.as_mut_ptr()) }
    }

    /// [`Direct::block`] for this call's rows of the planes at `out`.
    ///
    /// # Safety
    /// `out` must be writable at the block's planes, and their rows `self.rows` (pooled
    /// rows `rows / 2` where the tiles pool) written by no one else meanwhile.
    unsafe fn block_into(&self, xp: &[f32], gi: usize, cb: usize, out: *mut f32) {
        let f = self.filters;
        let taps = f.cg * f.kh * f.kw;
        let first = gi * f.mg + cb * CO;
        let valid = CO.min(f.mg - cb * CO);
        assert_eq!(xp.len(), f.cg * self.hp() * self.ws, "padded input");
        assert!(self.rows.end <= self.oh, "output rows");
        let mut bias = [0.0; CO];
        bias[..valid].copy_from_slice(&self.bias[first..first + valid]);
        let blocks = f.mg.div_ceil(CO);
        let w = &f.packed[(gi * blocks + cb) * taps * CO..][..taps * CO];
        #[cfg(target_arch = "x86_64")]
        {
            // AVX2's 16 registers hold one row's 8 accumulators; AVX-512's 32 hold three.
            if let Some([ph, _]) = self.pooled {
                for oy in (self.rows.start..self.rows.end.min(2 * ph)).step_by(2) {
                    // SAFETY: as below, for rows `oy, oy + 1` and the first `2·pw`
                    // columns, inside the output since the pool's windows are.
                    unsafe { pooled_tiles_avx512(self, xp, w, &bias, valid, oy, out) };
                }
                return;
            }
            let rows = match f.isa {
                Isa::Avx512 => 3,
                Isa::Avx2 => 1,
            };
            let mut oy = self.rows.start;
            while oy < self.rows.end {
                let r = rows.min(self.rows.end - oy);
                // SAFETY: `isa()` found the features; the sizes were checked above (and
                // `out` vouched for by the caller), rows `oy..oy + r` are this call's
                // output rows, and every tile reads at most
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

/// One tile's accumulators, `R` output rows from `oy` × one vector of columns from `x0`
/// × [`CO`] channels: the bias plus every tap (each weight broadcast feeds `R` FMAs, each
/// row loaded [`CO`]). Expands inside a function with the ISA's features enabled.
macro_rules! accumulate {
    ($rows:expr, $d:expr, $xp:expr, $w:expr, $bias:expr, $oy:expr, $x0:expr,
     $set1:ident, $load:ident, $fmadd:ident) => {{
        let (d, xp, w, oy, x0) = ($d, $xp, $w, $oy, $x0);
        let (cg, kh, kw, hp) = (d.filters.cg, d.filters.kh, d.filters.kw, d.hp());
        let mut acc = [[$set1(0.0); CO]; $rows];
        for rows in acc.iter_mut() {
            for (a, &b) in rows.iter_mut().zip($bias) {
                *a = $set1(b);
            }
        }
        for ci in 0..cg {
            for ky in 0..kh {
                let row = xp
                    .as_ptr()
                    .add((ci * hp + oy - d.rows.start + ky) * d.ws + x0);
                let wr = w.as_ptr().add((ci * kh + ky) * kw * CO);
                for kx in 0..kw {
                    let mut xs = [$set1(0.0); $rows];
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
        acc
    }};
}

/// The register-tiled loop for one ISA: [`accumulate`]'s tiles of `R` output rows ×
/// `$lanes` columns × [`CO`] channels; a last partial tile is stored through a mask.
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
            out: *mut f32,
        ) {
            use std::arch::x86_64::*;
            let plane = d.oh * d.ow;
            // SAFETY: the features are enabled, and the bounds are those `Direct::block`
            // checked.
            unsafe {
                let zero = $zero();
                for x0 in (0..d.ow).step_by($lanes) {
                    let acc: [[_; CO]; R] =
                        accumulate!(R, d, xp, w, bias, oy, x0, $set1, $load, $fmadd);
                    let $n = ($lanes).min(d.ow - x0);
                    for (r, rows) in acc.iter().enumerate() {
                        for (b, &a) in rows.iter().enumerate().take(valid) {
                            let $v = if d.relu { $max(a, zero) } else { a };
                            let $dst = out.add(b * plane + (oy + r) * d.ow + x0);
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

/// [`tiles_avx512`] for conv rows `oy, oy + 1` of which only the 2×2 maxima at stride 2
/// are kept: each tile's 16 columns pool to 8, stored as pooled row `oy / 2`. Bias and
/// ReLU commute with the maximum, so ReLU is taken after it.
///
/// # Safety
/// AVX-512F must be present, with the bounds [`Direct::block`] checked.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pooled_tiles_avx512(
    d: &Direct,
    xp: &[f32],
    w: &[f32],
    bias: &[f32; CO],
    valid: usize,
    oy: usize,
    out: *mut f32,
) {
    use crate::kernels::simd::store_first_avx512;
    use std::arch::x86_64::*;
    const R: usize = 2;
    let Some([ph, pw]) = d.pooled else {
        unreachable!("only for pooled blocks")
    };
    let plane = ph * pw;
    // SAFETY: the features are enabled; conv columns below `2·pw` and rows `oy + 1 <
    // 2·ph` are inside the output, and pooled row `oy / 2` inside each plane.
    unsafe {
        let zero = _mm512_setzero_ps();
        // Lanes 0..8 gather columns of one channel's vector, 8..16 of the next's.
        let firsts = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let seconds = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        for x0 in (0..2 * pw).step_by(16) {
            let acc: [[_; CO]; R] = accumulate!(
                R,
                d,
                xp,
                w,
                bias,
                oy,
                x0,
                _mm512_set1_ps,
                _mm512_loadu_ps,
                _mm512_fmadd_ps
            );
            let n = 8.min(pw - x0 / 2);
            for b in (0..valid).step_by(2) {
                // `max_ps(a, b)` is `a > b ? a : b`: the order of `PlaneMax::apply`,
                // down the rows first, then across the pair.
                let down = |b: usize| _mm512_max_ps(acc[1][b], acc[0][b]);
                let (u, v) = (down(b), down(b + 1));
                let m = _mm512_max_ps(
                    _mm512_permutex2var_ps(u, seconds, v),
                    _mm512_permutex2var_ps(u, firsts, v),
                );
                let m = if d.relu { _mm512_max_ps(m, zero) } else { m };
                let dst = out.add(b * plane + oy / 2 * pw + x0 / 2);
                store_first_avx512(dst, n, m);
                if b + 1 < valid {
                    let high = _mm512_shuffle_f32x4::<0b01_00_11_10>(m, m);
                    store_first_avx512(dst.add(plane), n, high);
                }
            }
        }
    }
}

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
    let d = Direct::new(geo, max_pool, filters, bias, e.relu);
    let img = geo.image_size();
    let p = d.oh * d.ow;
    let op = max_pool.map_or(p, |pg| pg.grid_size());
    let tasks = n * groups;
    let blocks_parallel = tasks == 1 && mg * cg * geo.kernel_size() * p >= PARALLEL_MADDS;
    // Pools the tiles do not take are taken on each block's full planes.
    let plane_max = max_pool
        .filter(|_| d.pooled.is_none())
        .map(pool::PlaneMax::new);
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
    let image = |t: usize| &x[t * cg * img..][..cg * img];
    for_each_chunk(y, mg * op, tasks > 1, |(t, out)| {
        let gi = t % groups;
        let count = mg.div_ceil(CO);
        let blocks = out.chunks_mut(CO * op).enumerate();
        if !blocks_parallel {
            with_padded(|xp| {
                d.pad(geo, image(t), xp);
                blocks.for_each(|c| block(gi, xp, c));
            });
            return Ok(());
        }
        if plane_max.is_none() {
            // Each worker takes a band of output rows in every block, padding only the
            // input rows the band reads: mostly those the worker itself wrote in the
            // layer before, so they are in its own cache. Pooled tiles take rows in pairs.
            let pair = if d.pooled.is_some() { 2 } else { 1 };
            let units = d.pooled.map_or(d.oh, |[ph, _]| ph);
            let out = Out(out.as_mut_ptr());
            rayon::broadcast(|ctx| {
                let r = share(ctx.index(), ctx.num_threads(), units);
                if r.is_empty() {
                    return;
                }
                let band = d.band(r.start * pair..r.end * pair);
                with_padded(|xp| {
                    band.pad(geo, image(t), xp);
                    for cb in 0..count {
                        // SAFETY: `out` holds this image's `count` blocks of planes, and
                        // the band's rows of them are this worker's alone.
                        unsafe { band.block_into(xp, gi, cb, out.get().add(cb * CO * op)) };
                    }
                });
            });
            return Ok(());
        }
        // A pool taken on full planes needs them whole: each worker pads the image itself
        // and takes a fixed share of the blocks (one padded copy read by every worker
        // moved between their caches on every call: padding was 4× slower on two cores).
        let threads = rayon::current_num_threads();
        let mut shares: Vec<Vec<_>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, c) in blocks {
            shares[(i * threads) / count].push((i, c));
        }
        let shares: Vec<_> = shares.into_iter().map(Mutex::new).collect();
        rayon::broadcast(|ctx| {
            let mine = std::mem::take(&mut *shares[ctx.index()].lock().expect("never poisoned"));
            if !mine.is_empty() {
                with_padded(|xp| {
                    d.pad(geo, image(t), xp);
                    mine.into_iter().for_each(|c| block(gi, xp, c));
                });
            }
        });
        Ok(())
    })
}

thread_local! {
    /// This thread's padded input, kept from one call to the next so that it stays in
    /// the thread's cache and costs no allocation.
    static PADDED: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// `f` on this thread's padded-input buffer (taken out meanwhile, so that a nested call
/// gets one of its own).
fn with_padded<R>(f: impl FnOnce(&mut Vec<f32>) -> R) -> R {
    let mut buf = PADDED.take();
    let r = f(&mut buf);
    PADDED.set(buf);
    r
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

    /// (n, c, m, group, h, w, kh, kw, pads).
    type Case = (
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        [i64; 4],
    );

    #[test]
    fn direct_convolution_matches_the_sum_over_taps() {
        // (n, c, m, group, h, w, kh, kw, pads): vector tails, a last block of fewer than
        // CO channels, groups, asymmetric pads, and one image big enough to split its
        // blocks across threads.
        let cases: &[Case] = &[
            (1, 3, 16, 1, 32, 32, 3, 3, [1, 1, 1, 1]),
            (2, 16, 32, 1, 16, 16, 3, 3, [1, 1, 1, 1]),
            (3, 2, 3, 1, 9, 17, 3, 3, [0, 2, 1, 0]),
            (1, 4, 20, 2, 11, 33, 5, 3, [2, 1, 2, 1]),
            (2, 6, 12, 3, 7, 8, 1, 3, [0, 1, 0, 1]),
            (1, 16, 32, 1, 40, 40, 3, 3, [1, 1, 1, 1]),
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
            let wants = [false, true].map(|relu| reference(&x, &w, &b, g, &pads, relu));
            for filters in packings {
                let isa = filters.as_ref().map(|f| f.isa);
                for (relu, want) in [false, true].into_iter().zip(&wants) {
                    let e = Epilogue {
                        bias: Some(b.view()),
                        relu,
                        max_pool: None,
                    };
                    let y = conv_with(x.view(), w.view(), filters.as_ref(), &attrs, &e).unwrap();
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

    type Pool = ([i64; 4], [usize; 2], [usize; 2], bool);

    #[test]
    fn direct_convolution_pools_each_plane() {
        // 11 channels: a last block of 3, whose odd channel has no pair in the tiles
        // that pool.
        let (x, w, b) = (
            ramp(&[2, 3, 13, 18], 1),
            ramp(&[11, 3, 3, 3], 2),
            ramp(&[11], 3),
        );
        let attrs = ConvAttrs {
            window: window(&[1, 1, 1, 1], None, None),
            group: 1,
        };
        // On the 13×18 conv output: 3×2 windows with a row and a column of padding at
        // the end in ceil mode (a last window starting in the padding is dropped), and
        // 2×2 windows with padding first, whose first column holds one tap.
        // Then 2×2 squares from the corner (the last row left out), which AVX-512 tiles
        // pool, and the same in ceil mode, whose last row of windows holds one row.
        // (pads, kernel, pooled grid, ceil mode).
        let pools: [Pool; 4] = [
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
            let ws = w.as_slice().unwrap();
            for (isa, relu) in simd::isas_here("direct convolutions")
                .into_iter()
                .flat_map(|isa| [(isa, false), (isa, true)])
            {
                let full = reference(&x, &w, &b, 1, &[1, 1, 1, 1], relu);
                let pooled = Epilogue {
                    bias: Some(b.view()),
                    relu,
                    max_pool: Some(&pa),
                };
                let filters = Filters::for_isa(isa, ws, w.shape(), 1);
                let y = conv_with(x.view(), w.view(), filters.as_ref(), &attrs, &pooled).unwrap();
                assert_eq!(y.shape(), &[2, 11, grid[0], grid[1]], "pads {pads:?}");
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
                        "{isa:?} relu {relu} pads {pads:?} at {i:?}: {got} against {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_image_split_in_row_bands_matches_one_thread() {
        // One image big enough to split: 33 conv rows (16 pooled, the last conv row
        // left out) cut into bands by 2 and 3 workers, plain and pooled by the tiles.
        let (x, w, b) = (
            ramp(&[1, 16, 33, 40], 4),
            ramp(&[24, 16, 3, 3], 5),
            ramp(&[24], 6),
        );
        let attrs = ConvAttrs {
            window: window(&[1, 1, 1, 1], None, None),
            group: 1,
        };
        let pa = PoolAttrs {
            window: window(&[0, 0, 0, 0], Some(vec![2, 2]), Some(vec![2, 2])),
            ceil_mode: false,
        };
        let ws = w.as_slice().unwrap();
        for isa in simd::isas_here("direct convolutions") {
            let filters = Filters::for_isa(isa, ws, w.shape(), 1);
            for max_pool in [None, Some(&pa)] {
                let e = Epilogue {
                    bias: Some(b.view()),
                    relu: true,
                    max_pool,
                };
                let run = |threads: usize| {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    pool.install(|| conv_with(x.view(), w.view(), filters.as_ref(), &attrs, &e))
                        .unwrap()
                };
                let one = run(1);
                let full = reference(&x, &w, &b, 1, &[1, 1, 1, 1], true);
                for (i, got) in one.indexed_iter() {
                    let want = match max_pool {
                        None => full[&i],
                        Some(_) => (0..4)
                            .map(|t| full[[0, i[1], i[2] * 2 + t / 2, i[3] * 2 + t % 2]])
                            .fold(f64::NEG_INFINITY, f64::max),
                    };
                    assert!(
                        (*got as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{isa:?} pooled {} at {i:?}: {got} against {want}",
                        max_pool.is_some()
                    );
                }
                for threads in [2, 3] {
                    assert_eq!(run(threads), one, "{isa:?} on {threads} threads");
                }
            }
        }
    }
}
