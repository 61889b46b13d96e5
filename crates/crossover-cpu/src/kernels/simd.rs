//! The vector instructions this CPU has, found at run time. The library is compiled for
//! baseline x86-64 so that one wheel runs on every machine; a kernel written with AVX2
//! or AVX-512 intrinsics runs only after [`isa`] has found them.

/// The x86-64 vector extensions a hand-written kernel may target, widest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F: 16 f32 lanes, masked stores.
    Avx512,
    /// AVX2 with FMA: 8 f32 lanes.
    Avx2,
}

impl Isa {
    /// f32 lanes of one vector register.
    pub fn lanes(self) -> usize {
        match self {
            Isa::Avx512 => 16,
            Isa::Avx2 => 8,
        }
    }
}

/// The widest [`Isa`] this CPU runs, if any.
pub fn isa() -> Option<Isa> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") {
            return Some(Isa::Avx512);
        }
        if has!("avx2") && has!("fma") {
            return Some(Isa::Avx2);
        }
    }
    None
}

/// Every [`Isa`] this CPU runs (AVX2 runs on AVX-512 machines too), saying loudly when
/// there is none and `what` goes untested.
#[cfg(test)]
pub(crate) fn isas_here(what: &str) -> Vec<Isa> {
    match isa() {
        Some(Isa::Avx512) => vec![Isa::Avx512, Isa::Avx2],
        Some(Isa::Avx2) => vec![Isa::Avx2],
        None => {
            eprintln!("SKIPPED: no AVX2 or AVX-512 on this CPU; {what} are not used here");
            vec![]
        }
    }
}

/// Defines a function whose body is compiled three times, for AVX-512, for AVX2+FMA and
/// for baseline x86-64, and picks one by [`isa`] at each call: plain loops in it
/// vectorise at the CPU's width instead of SSE2's 4 lanes. The body is forced inline
/// into each copy; a closure handed to a trampoline is not, and stays SSE2.
macro_rules! widest {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?
     $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                use $crate::kernels::simd::{isa, Isa};
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                // SAFETY: `isa()` found the features each copy is compiled for.
                match isa() {
                    Some(Isa::Avx512) => return unsafe { avx512($($arg),*) },
                    Some(Isa::Avx2) => return unsafe { avx2($($arg),*) },
                    None => {}
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use widest;

/// Stores the first `n` (at most 16) lanes of `v` at `dst`: a tile's last columns.
///
/// # Safety
/// AVX-512F must be present; `dst` must be valid for `n` writes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn store_first_avx512(dst: *mut f32, n: usize, v: std::arch::x86_64::__m512) {
    use std::arch::x86_64::*;
    // SAFETY: the mask covers the `n` lanes the caller vouches for.
    unsafe { _mm512_mask_storeu_ps(dst, (u32::MAX >> (32 - n)) as u16, v) }
}

/// [`store_first_avx512`] for 8 lanes of AVX2.
///
/// # Safety
/// AVX2 must be present; `dst` must be valid for `n` (at most 8) writes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn store_first_avx2(dst: *mut f32, n: usize, v: std::arch::x86_64::__m256) {
    use std::arch::x86_64::*;
    // SAFETY: lanes at or past `n` are masked off.
    unsafe {
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_maskstore_ps(
            dst,
            _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lane),
            v,
        )
    }
}

/// Whether `T` is f32 (generic kernels hand their f32 case to a vector one).
pub(crate) fn is_f32<T: 'static>() -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
}

/// `s` as f32s, when `T` is f32.
pub(crate) fn as_f32<T: 'static>(s: &[T]) -> Option<&[f32]> {
    is_f32::<T>()
        // SAFETY: T is f32.
        .then(|| unsafe { std::slice::from_raw_parts(s.as_ptr().cast(), s.len()) })
}

/// [`as_f32`] for a mutable slice.
pub(crate) fn as_f32_mut<T: 'static>(s: &mut [T]) -> Option<&mut [f32]> {
    is_f32::<T>()
        // SAFETY: T is f32, and `s` is borrowed mutably for the result's lifetime.
        .then(|| unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast(), s.len()) })
}

/// `Σ a[i]·b[i]` in the vectors of `isa`.
pub(crate) fn dot(isa: Isa, a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot product of unequal lengths");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `isa` came from `isa()`, which found the features; the lengths are equal.
    unsafe {
        match isa {
            Isa::Avx512 => dot_avx512(a, b),
            Isa::Avx2 => dot_avx2(a, b),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("no {isa:?} outside x86-64")
}

/// Four independent accumulators of `$lanes` lanes hide the FMA latency; the tail past
/// the last whole vector is summed in scalars.
macro_rules! dot_kernel {
    ($name:ident, $features:literal, $lanes:literal, $zero:ident, $load:ident, $fmadd:ident,
     $add:ident, |$v:ident| $reduce:expr) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name(a: &[f32], b: &[f32]) -> f32 {
            use std::arch::x86_64::*;
            let n = a.len().min(b.len());
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            // SAFETY: every load reads `$lanes` floats below `n`.
            unsafe {
                let mut acc = [$zero(); 4];
                let mut i = 0;
                while i + 4 * $lanes <= n {
                    for (u, s) in acc.iter_mut().enumerate() {
                        let at = i + u * $lanes;
                        *s = $fmadd($load(pa.add(at)), $load(pb.add(at)), *s);
                    }
                    i += 4 * $lanes;
                }
                while i + $lanes <= n {
                    acc[0] = $fmadd($load(pa.add(i)), $load(pb.add(i)), acc[0]);
                    i += $lanes;
                }
                let $v = $add($add(acc[0], acc[1]), $add(acc[2], acc[3]));
                let mut sum: f32 = $reduce;
                for j in i..n {
                    sum += a[j] * b[j];
                }
                sum
            }
        }
    };
}

dot_kernel!(
    dot_avx512,
    "avx512f",
    16,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_fmadd_ps,
    _mm512_add_ps,
    |v| _mm512_reduce_add_ps(v)
);

dot_kernel!(
    dot_avx2,
    "avx2,fma",
    8,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_fmadd_ps,
    _mm256_add_ps,
    |v| {
        let q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let h = _mm_add_ps(q, _mm_movehl_ps(q, q));
        _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1)))
    }
);

/// `out[j] = Σ_p x[p]·b[p·ldb + j]` for `j < out.len()`: one row times a matrix whose
/// rows are contiguous, each row of `b` read once and the outputs kept in registers.
///
/// # Safety
/// `b` must be valid for reads of `x.len()` rows of `ldb` floats, the last `out.len()`.
pub(crate) unsafe fn row_times_rows(
    isa: Isa,
    x: &[f32],
    b: *const f32,
    ldb: usize,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `isa` came from `isa()`; the caller vouches for `b`.
    unsafe {
        match isa {
            Isa::Avx512 => rows_avx512(x, b, ldb, out),
            Isa::Avx2 => rows_avx2(x, b, ldb, out),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (x, b, ldb, out);
        unreachable!("no {isa:?} outside x86-64")
    }
}

/// Eight vectors of outputs at a time across every row of `b`, then one vector at a
/// time, then the last columns in scalars.
macro_rules! rows_kernel {
    ($name:ident, $features:literal, $lanes:literal, $zero:ident, $set1:ident, $load:ident,
     $fmadd:ident, $store:ident) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name(x: &[f32], b: *const f32, ldb: usize, out: &mut [f32]) {
            use std::arch::x86_64::*;
            let n = out.len();
            let o = out.as_mut_ptr();
            // SAFETY: loads stay below column `n` of each of the `x.len()` rows.
            unsafe {
                let mut j = 0;
                while j + 8 * $lanes <= n {
                    let mut acc = [$zero(); 8];
                    for (p, &xp) in x.iter().enumerate() {
                        let (xv, row) = ($set1(xp), b.add(p * ldb + j));
                        for (u, s) in acc.iter_mut().enumerate() {
                            *s = $fmadd(xv, $load(row.add(u * $lanes)), *s);
                        }
                    }
                    for (u, s) in acc.iter().enumerate() {
                        $store(o.add(j + u * $lanes), *s);
                    }
                    j += 8 * $lanes;
                }
                while j + $lanes <= n {
                    let mut s = $zero();
                    for (p, &xp) in x.iter().enumerate() {
                        s = $fmadd($set1(xp), $load(b.add(p * ldb + j)), s);
                    }
                    $store(o.add(j), s);
                    j += $lanes;
                }
                for jj in j..n {
                    out[jj] = x
                        .iter()
                        .enumerate()
                        .map(|(p, &xp)| xp * *b.add(p * ldb + jj))
                        .sum();
                }
            }
        }
    };
}

rows_kernel!(
    rows_avx512,
    "avx512f",
    16,
    _mm512_setzero_ps,
    _mm512_set1_ps,
    _mm512_loadu_ps,
    _mm512_fmadd_ps,
    _mm512_storeu_ps
);

rows_kernel!(
    rows_avx2,
    "avx2,fma",
    8,
    _mm256_setzero_ps,
    _mm256_set1_ps,
    _mm256_loadu_ps,
    _mm256_fmadd_ps,
    _mm256_storeu_ps
);
