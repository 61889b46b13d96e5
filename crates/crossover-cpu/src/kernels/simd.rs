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

/// `s` as f32s, when `T` is f32 (generic kernels hand their f32 case to a vector one).
pub(crate) fn as_f32<T: 'static>(s: &[T]) -> Option<&[f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        // SAFETY: T is f32.
        .then(|| unsafe { std::slice::from_raw_parts(s.as_ptr().cast(), s.len()) })
}

/// [`as_f32`] for a mutable slice.
pub(crate) fn as_f32_mut<T: 'static>(s: &mut [T]) -> Option<&mut [f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        // SAFETY: T is f32, and `s` is borrowed mutably for the result's lifetime.
        .then(|| unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast(), s.len()) })
}
