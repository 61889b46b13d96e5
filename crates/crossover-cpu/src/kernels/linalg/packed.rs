//! `x · W + bias` for a constant f32 `W`, packed once into the layout our micro-kernels
//! read. The `gemm` crate repacks both operands on every call (a fifth of the encoder's
//! time at batch 1); here the activations are read where they lie, a tile of
//! [`Shape::mr`] rows broadcasting one value of each row per step of `k` (packing them
//! cost a tenth of a 128 × 1536 × 384 product and bought nothing), and each tile of `mr`
//! rows × two vectors of columns keeps its sums in registers from the bias to the
//! activation at the store.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::gemm::{BAND_OPERAND, FEW_ROWS};
use crate::kernels::simd::Isa;

/// Bytes of `x`'s rows a task takes at least room for: they stay in L2 while the panels
/// stream by. Splitting rows further costs passes over the weights and can leave tasks
/// unequal (on a 2 MiB L2, 128 × 384 rows split 6 + 5 blocks were part of a 20% loss).
const MIN_ROW_BYTES_PER_TASK: usize = 768 << 10;

/// Bytes of `x`'s rows a task takes at most: half the L2 where the OS says how large it
/// is, and never less than [`MIN_ROW_BYTES_PER_TASK`]. On an Intel Xeon VM with 2 MiB of
/// L2 per core, 1 MiB instead of 768 KiB took 128 × 1536 × 384 (the encoder's second FFN
/// product) from 0.57 to 0.43 ms on two threads, its 11 row blocks one task's instead of
/// 6 + 5 (interleaved runs); 1024³ did not move.
fn row_bytes_per_task() -> usize {
    static BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| {
        let l2 = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cache/index2/size")
            .ok()
            .and_then(|s| cache_bytes(s.trim()));
        l2.map_or(MIN_ROW_BYTES_PER_TASK, |b| {
            (b / 2).max(MIN_ROW_BYTES_PER_TASK)
        })
    })
}

/// A cache size as sysfs writes it: `2048K`, `1M`, or bytes.
fn cache_bytes(s: &str) -> Option<usize> {
    let (digits, unit) = match s.as_bytes().last()? {
        b'K' => (&s[..s.len() - 1], 1 << 10),
        b'M' => (&s[..s.len() - 1], 1 << 20),
        _ => (s, 1),
    };
    digits.parse::<usize>().ok().map(|n| n * unit)
}

/// Panels a task takes at most.
const PANELS_PER_TASK: usize = 4;
/// Multiply-adds below which a product stays on one thread.
const PARALLEL_MADDS: usize = 1 << 18;

/// A tile's rows and vectors of columns, per instruction set.
#[derive(Clone, Copy, Debug)]
struct Shape {
    /// Rows of a full tile.
    mr: usize,
    /// Columns of a panel: two vectors.
    nr: usize,
}

impl Shape {
    fn of(isa: Isa) -> Shape {
        match isa {
            // 12×2 accumulators, 2 of the panel, 1 broadcast: 27 of 32 registers.
            Isa::Avx512 => Shape { mr: 12, nr: 32 },
            // 6×2 accumulators, 2 of the panel, 1 broadcast: 15 of 16 registers.
            Isa::Avx2 => Shape { mr: 6, nr: 16 },
        }
    }
}

/// A `[K, N]` matrix as `⌈N/nr⌉` panels of `K × nr` (the last zero-padded), with its
/// bias padded the same way.
pub(crate) struct PackedWeights {
    isa: Isa,
    shape: Shape,
    k: usize,
    n: usize,
    panels: Vec<Line>,
    bias: Option<Vec<f32>>,
}

/// One cache line of f32s: panels aligned to lines, so no vector load splits two.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

impl PackedWeights {
    /// Packs row-major `w` (`k × n`) and an optional bias of `n`, where this CPU has a
    /// vector ISA our kernels use.
    pub(crate) fn new(
        isa: Option<Isa>,
        w: &[f32],
        k: usize,
        n: usize,
        bias: Option<&[f32]>,
    ) -> Option<PackedWeights> {
        assert_eq!(w.len(), k * n, "weights of {k}x{n}");
        let mut packed = PackedWeights::from_rows(isa?, k, n, |p| &w[p * n..(p + 1) * n]);
        packed.bias = bias.map(|b| {
            assert_eq!(b.len(), n, "bias of {n}");
            let mut padded = vec![0.0; n.div_ceil(packed.shape.nr) * packed.shape.nr];
            padded[..n].copy_from_slice(b);
            padded
        });
        Some(packed)
    }

    /// Packs the `k × n` matrix whose row `p` is `row(p)` (`n` values).
    pub(crate) fn from_rows<'a>(
        isa: Isa,
        k: usize,
        n: usize,
        row: impl Fn(usize) -> &'a [f32],
    ) -> PackedWeights {
        let mut packed = PackedWeights::zeros(isa, k, n);
        let nr = packed.shape.nr;
        for (j, panel) in lines_mut(&mut packed.panels).chunks_mut(k * nr).enumerate() {
            let (j0, cols) = (j * nr, nr.min(n - j * nr));
            for (p, dst) in panel.chunks_mut(nr).enumerate() {
                dst[..cols].copy_from_slice(&row(p)[j0..j0 + cols]);
            }
        }
        packed
    }

    /// Packs the `k × n` matrix whose column `j` is `column(j)` (`k` values): a
    /// transposed matrix, read along its rows.
    pub(crate) fn from_columns<'a>(
        isa: Isa,
        k: usize,
        n: usize,
        column: impl Fn(usize) -> &'a [f32],
    ) -> PackedWeights {
        let mut packed = PackedWeights::zeros(isa, k, n);
        let nr = packed.shape.nr;
        for (j, panel) in lines_mut(&mut packed.panels).chunks_mut(k * nr).enumerate() {
            for c in 0..nr.min(n - j * nr) {
                for (p, &v) in column(j * nr + c)[..k].iter().enumerate() {
                    panel[p * nr + c] = v;
                }
            }
        }
        packed
    }

    /// Zero panels for a `k × n` matrix.
    fn zeros(isa: Isa, k: usize, n: usize) -> PackedWeights {
        let shape = Shape::of(isa);
        // nr is a multiple of 16, so every panel row starts a line.
        let lines = n.div_ceil(shape.nr) * k * shape.nr / 16;
        PackedWeights {
            isa,
            shape,
            k,
            n,
            panels: vec![Line([0.0; 16]); lines],
            bias: None,
        }
    }

    pub(crate) fn k(&self) -> usize {
        self.k
    }

    pub(crate) fn n(&self) -> usize {
        self.n
    }

    /// `y = x · W + bias`, Relu'd with `relu`, for `m` row-major rows of `x` into `y`'s
    /// `m × n`, every element of which it writes (so `y` need not be initialised).
    pub(crate) fn apply(&self, x: &[f32], m: usize, relu: bool, y: &mut [MaybeUninit<f32>]) {
        let (k, n, Shape { mr, nr }) = (self.k, self.n, self.shape);
        assert_eq!(x.len(), m * k, "{m} rows of {k}");
        assert_eq!(y.len(), m * n, "{m} rows of {n}");
        if m == 0 || n == 0 {
            return;
        }
        let threads = rayon::current_num_threads();
        // A few rows stream the weights once, so they are split by their bytes, not by
        // the FMAs: MLP b1's 512 × 256 layer on one core was a third of the run.
        let parallel = threads > 1
            && (m * k * n >= PARALLEL_MADDS || (m <= FEW_ROWS && k * n >= BAND_OPERAND));
        let panels = n.div_ceil(nr);
        let blocks = m.div_ceil(mr);
        let out = Out(y.as_mut_ptr().cast());
        // One task: row blocks × panels. Tasks write disjoint tiles of `y`.
        let task = |rows: std::ops::Range<usize>, cols: std::ops::Range<usize>| {
            for j in cols {
                for b in rows.clone() {
                    // SAFETY: `y` is m × n, and each tile is one task's.
                    unsafe { self.tile(x, m, b, j, relu, out.get(), n) };
                }
            }
        };
        if !parallel {
            task(0..blocks, 0..panels);
        } else if m <= FEW_ROWS {
            // The product streams the weights once: each thread takes a fixed range of
            // panels, so that every core finds its part of `W` in its own cache.
            rayon::broadcast(|ctx| {
                let (t, of) = (ctx.index(), ctx.num_threads());
                task(0..blocks, share(t, of, panels));
            });
        } else {
            let row_tasks = blocks.div_ceil((row_bytes_per_task() / (mr * k * 4)).max(1));
            // A whole number of tasks per thread, where the panels allow: 3 tasks on 2
            // threads take as long as 4.
            let col_tasks = (panels.div_ceil(PANELS_PER_TASK)..=panels)
                .find(|c| row_tasks * c % threads == 0)
                .unwrap_or(panels);
            (0..row_tasks * col_tasks).into_par_iter().for_each(|t| {
                let (r, c) = (t / col_tasks, t % col_tasks);
                task(share(r, row_tasks, blocks), share(c, col_tasks, panels));
            });
        }
    }

    /// `c[i·ldc + j] = Σ_p x[i·k + p] · W[p, j]` for the `m` rows `i` of `x`, on this
    /// thread, into rows `ldc` apart (one head's columns of a wider matrix, say).
    ///
    /// # Safety
    /// `c` must be writable at `m` rows of `n` values `ldc` apart, by this call alone.
    pub(crate) unsafe fn apply_into(&self, x: &[f32], m: usize, c: *mut f32, ldc: usize) {
        assert_eq!(x.len(), m * self.k, "{m} rows of {}", self.k);
        assert!(ldc >= self.n, "rows of {} written {ldc} apart", self.n);
        for j in 0..self.n.div_ceil(self.shape.nr) {
            for b in 0..m.div_ceil(self.shape.mr) {
                // SAFETY: the caller vouches for `c`'s m rows of n, ldc apart.
                unsafe { self.tile(x, m, b, j, false, c, ldc) };
            }
        }
    }

    /// Row block `b` × panel `j` of the product into `out`'s rows, `ldc` apart.
    ///
    /// # Safety
    /// `out` must be writable at `m` rows of `n` values `ldc` apart, and this tile of
    /// them written by no one else meanwhile.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile(
        &self,
        x: &[f32],
        m: usize,
        b: usize,
        j: usize,
        relu: bool,
        out: *mut f32,
        ldc: usize,
    ) {
        let (k, n, Shape { mr, nr }) = (self.k, self.n, self.shape);
        let rows = mr.min(m - b * mr);
        let cols = nr.min(n - j * nr);
        let a = x[b * mr * k..(b * mr + rows) * k].as_ptr();
        let w = lines(&self.panels)[j * k * nr..(j + 1) * k * nr].as_ptr();
        let bias = self
            .bias
            .as_ref()
            .map_or(std::ptr::null(), |v| v[j * nr..].as_ptr());
        // SAFETY: (b, j) is in range, so tile rows × cols lies inside the output's m
        // rows of n, which the caller vouches for; `a` holds rows × k values and `w`
        // k × nr; `bias`, when present, has nr values from j·nr.
        unsafe {
            let c = out.add(b * mr * ldc + j * nr);
            let t = Tile {
                k,
                a,
                w,
                bias,
                c,
                ldc,
                cols,
            };
            self.dispatch(rows, t, relu);
        }
    }

    /// The kernel for `rows` rows (its sums held in registers, so rows are a constant).
    ///
    /// # Safety
    /// As [`Tile`]'s fields say.
    unsafe fn dispatch(&self, rows: usize, t: Tile, relu: bool) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` came from `simd::isa()`, which found its features; the caller
        // vouches for the tile.
        unsafe {
            macro_rules! rows {
                ($kernel:ident, $($r:literal)*) => {
                    match rows {
                        $($r => $kernel::<$r>(t, relu),)*
                        _ => unreachable!("a tile of {rows} rows"),
                    }
                };
            }
            match self.isa {
                Isa::Avx512 => rows!(tile_avx512, 1 2 3 4 5 6 7 8 9 10 11 12),
                Isa::Avx2 => rows!(tile_avx2, 1 2 3 4 5 6),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (rows, t, relu);
            unreachable!("no {:?} outside x86-64", self.isa)
        }
    }
}

/// Part `i` of `total` items cut into `of` parts that differ by at most one.
pub(crate) fn share(i: usize, of: usize, total: usize) -> std::ops::Range<usize> {
    total * i / of..total * (i + 1) / of
}

fn lines(l: &[Line]) -> &[f32] {
    // SAFETY: a Line is 16 f32s with no padding.
    unsafe { std::slice::from_raw_parts(l.as_ptr().cast(), l.len() * 16) }
}

fn lines_mut(l: &mut [Line]) -> &mut [f32] {
    // SAFETY: as for `lines`, borrowed mutably for the result's lifetime.
    unsafe { std::slice::from_raw_parts_mut(l.as_mut_ptr().cast(), l.len() * 16) }
}

/// Room for `len` f32s that [`PackedWeights::apply`] fills.
pub(crate) fn output(len: usize) -> Vec<MaybeUninit<f32>> {
    let mut v = Vec::with_capacity(len);
    v.resize_with(len, MaybeUninit::uninit);
    v
}

/// `v` once every element has been written.
///
/// # Safety
/// Every element of `v` must be initialised.
pub(crate) unsafe fn assume_init(v: Vec<MaybeUninit<f32>>) -> Vec<f32> {
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: MaybeUninit<f32> has f32's layout; the caller vouches for the values.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast(), v.len(), v.capacity()) }
}

/// An output's base pointer, shared by tasks that write disjoint tiles of it.
pub(crate) struct Out(pub(crate) *mut f32);
// SAFETY: tasks write disjoint tiles of one buffer borrowed for the whole product.
unsafe impl Sync for Out {}

impl Out {
    /// The pointer (a method, so that closures capture the `Sync` whole).
    pub(crate) fn get(&self) -> *mut f32 {
        self.0
    }
}

/// One tile's operands.
#[derive(Clone, Copy)]
struct Tile {
    k: usize,
    /// `rows` rows of `k` values, readable.
    a: *const f32,
    /// `k × nr` panel values, readable.
    w: *const f32,
    /// `nr` bias values, or null.
    bias: *const f32,
    /// The tile's first output; `rows` rows of `cols` values, `ldc` apart, writable.
    c: *mut f32,
    ldc: usize,
    cols: usize,
}

/// `R` rows × two vectors of `$lanes`: bias in, `k` steps of one panel row times `R`
/// broadcast values, Relu and (masked where `cols` ends early) stores out.
macro_rules! tile_kernel {
    ($name:ident, $features:literal, $lanes:literal, $zero:ident, $set1:ident, $load:ident,
     $fmadd:ident, $max:ident, $storeu:ident, |$dst:ident, $n:ident, $v:ident| $store:expr) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name<const R: usize>(t: Tile, relu: bool) {
            use std::arch::x86_64::*;
            // SAFETY: the features are enabled; `Tile` says what is readable/writable.
            unsafe {
                let zero = $zero();
                let init = if t.bias.is_null() {
                    [zero; 2]
                } else {
                    [$load(t.bias), $load(t.bias.add($lanes))]
                };
                let mut acc = [init; R];
                // One step of `k` at `p`, its row values at offset `u` from `a`.
                let step = |acc: &mut [[_; 2]; R], a: *const f32, p: usize, u: usize| {
                    let w = t.w.add(p * 2 * $lanes);
                    let (w0, w1) = ($load(w), $load(w.add($lanes)));
                    for (r, s) in acc.iter_mut().enumerate() {
                        // The row stride is `k` itself: with a separate stride LLVM hoists all
                        // four steps' broadcasts, spills them and runs 2.3x slower.
                        let av = $set1(*a.add(r * t.k + u));
                        s[0] = $fmadd(av, w0, s[0]);
                        s[1] = $fmadd(av, w1, s[1]);
                    }
                };
                // Four steps per pass, so that the rows' addresses (one add or lea each,
                // competing with the FMAs for their ports) are computed once per four.
                let mut p = 0;
                while p + 4 <= t.k {
                    let a = t.a.add(p);
                    for u in 0..4 {
                        step(&mut acc, a, p + u, u);
                    }
                    p += 4;
                }
                for p in p..t.k {
                    step(&mut acc, t.a.add(p), p, 0);
                }
                for (r, s) in acc.iter().enumerate() {
                    let row = t.c.add(r * t.ldc);
                    for (h, &v) in s.iter().enumerate() {
                        let $v = if relu { $max(v, zero) } else { v };
                        let $dst = row.add(h * $lanes);
                        let $n = t.cols.saturating_sub(h * $lanes).min($lanes);
                        if $n == $lanes {
                            $storeu($dst, $v);
                        } else if $n > 0 {
                            $store;
                        }
                    }
                }
            }
        }
    };
}

tile_kernel!(
    tile_avx512,
    "avx512f",
    16,
    _mm512_setzero_ps,
    _mm512_set1_ps,
    _mm512_loadu_ps,
    _mm512_fmadd_ps,
    _mm512_max_ps,
    _mm512_storeu_ps,
    |dst, n, v| crate::kernels::simd::store_first_avx512(dst, n, v)
);

tile_kernel!(
    tile_avx2,
    "avx2,fma",
    8,
    _mm256_setzero_ps,
    _mm256_set1_ps,
    _mm256_loadu_ps,
    _mm256_fmadd_ps,
    _mm256_max_ps,
    _mm256_storeu_ps,
    |dst, n, v| crate::kernels::simd::store_first_avx2(dst, n, v)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd;

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 2001) as f32 / 1000.0
                    - 1.0
            })
            .collect()
    }

    fn reference(
        x: &[f32],
        w: &[f32],
        bias: Option<&[f32]>,
        (m, k, n): (usize, usize, usize),
        relu: bool,
    ) -> Vec<f64> {
        let mut y = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = bias.map_or(0.0, |b| b[j] as f64);
                for p in 0..k {
                    s += x[i * k + p] as f64 * w[p * n + j] as f64;
                }
                y[i * n + j] = if relu { s.max(0.0) } else { s };
            }
        }
        y
    }

    #[test]
    fn packed_products_match_a_plain_sum() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        // Row tails of each tile height, column tails inside either vector, one row,
        // a few rows (panels split by thread), and tasks over row blocks × panels.
        let shapes = [
            (1, 1, 1),
            (1, 384, 384),
            (3, 7, 17),
            (5, 384, 384),
            (12, 64, 32),
            (13, 64, 33),
            (40, 100, 48),
            (200, 384, 100),
            (131, 33, 250),
            (300, 1536, 40),
        ];
        for isa in simd::isas_here("packed weights") {
            for (s, &(m, k, n)) in shapes.iter().enumerate() {
                let x = values(m * k, s as u32);
                let w = values(k * n, 7 + s as u32);
                let b = values(n, 13 + s as u32);
                for (bias, relu) in [(None, false), (Some(&b[..]), true), (Some(&b[..]), false)] {
                    let packed = PackedWeights::new(Some(isa), &w, k, n, bias).unwrap();
                    // NaN where `apply` writes nothing.
                    let mut y = vec![MaybeUninit::new(f32::NAN); m * n];
                    pool.install(|| packed.apply(&x, m, relu, &mut y));
                    // SAFETY: every element was initialised to NaN.
                    let y = unsafe { assume_init(y) };
                    let want = reference(&x, &w, bias, (m, k, n), relu);
                    for (i, (&got, &want)) in y.iter().zip(&want).enumerate() {
                        assert!(
                            (got as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()) * (k as f64).sqrt(),
                            "{isa:?} {m}x{k}x{n} bias {} relu {relu}: y[{}, {}] = {got}, want {want}",
                            bias.is_some(),
                            i / n,
                            i % n
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_transposed_pack_writes_its_columns_of_a_wider_output() {
        for isa in simd::isas_here("packed weights") {
            for &(m, k, n) in &[(1, 1, 1), (13, 32, 40), (128, 32, 128), (7, 128, 3)] {
                let x = values(m * k, 1);
                let w = values(k * n, 2);
                // W's columns as rows of its transpose, as keys lie in attention.
                let wt: Vec<f32> = (0..n * k).map(|i| w[(i % k) * n + i / k]).collect();
                let packed = PackedWeights::from_columns(isa, k, n, |j| &wt[j * k..]);
                // Columns 2..2+n of rows n+5 wide: the rest stays NaN.
                let ldc = n + 5;
                let mut y = vec![f32::NAN; m * ldc];
                // SAFETY: m rows of n from column 2 lie inside y's m × ldc.
                unsafe { packed.apply_into(&x, m, y[2..].as_mut_ptr(), ldc) };
                let want = reference(&x, &w, None, (m, k, n), false);
                for i in 0..m {
                    for j in 0..ldc {
                        let got = y[i * ldc + j];
                        if (2..2 + n).contains(&j) {
                            let want = want[i * n + j - 2];
                            assert!(
                                (got as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()),
                                "{isa:?} {m}x{k}x{n}: y[{i}, {j}] = {got}, want {want}"
                            );
                        } else {
                            assert!(got.is_nan(), "{isa:?} {m}x{k}x{n}: wrote y[{i}, {j}]");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn cache_sizes_read_as_sysfs_writes_them() {
        assert_eq!(cache_bytes("2048K"), Some(2 << 20));
        assert_eq!(cache_bytes("1M"), Some(1 << 20));
        assert_eq!(cache_bytes("524288"), Some(512 << 10));
        assert_eq!(cache_bytes("K"), None);
        assert_eq!(cache_bytes(""), None);
        assert!(row_bytes_per_task() >= MIN_ROW_BYTES_PER_TASK);
    }

    #[test]
    fn no_isa_packs_nothing() {
        assert!(PackedWeights::new(None, &[1.0], 1, 1, None).is_none());
    }
}
