//! Element types seen through the type they accumulate in: halves widen to f32, integers
//! stay themselves and wrap on overflow as numpy does.

use half::{bf16, f16};

/// An accumulator: f32, f64 or an integer type.
pub trait Acc: Copy + Send + Sync + PartialOrd + 'static {
    const ZERO: Self;
    const ONE: Self;
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn abs(self) -> Self;
    fn sqrt(self) -> Self;
    fn ln(self) -> Self;
    fn exp(self) -> Self;
    fn sub(self, o: Self) -> Self;
    /// `self / n`; zero for integers when `n` is zero.
    fn div_n(self, n: usize) -> Self;
    fn is_nan(self) -> bool;
    const NEG_INF: Self;
}

macro_rules! float_acc {
    ($($t:ty),*) => {$(
        impl Acc for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INF: Self = <$t>::NEG_INFINITY;
            #[inline(always)] fn add(self, o: Self) -> Self { self + o }
            #[inline(always)] fn mul(self, o: Self) -> Self { self * o }
            #[inline(always)] fn abs(self) -> Self { <$t>::abs(self) }
            #[inline(always)] fn sqrt(self) -> Self { <$t>::sqrt(self) }
            #[inline(always)] fn ln(self) -> Self { <$t>::ln(self) }
            #[inline(always)] fn exp(self) -> Self { <$t>::exp(self) }
            #[inline(always)] fn sub(self, o: Self) -> Self { self - o }
            #[inline(always)] fn div_n(self, n: usize) -> Self { self / n as $t }
            #[inline(always)] fn is_nan(self) -> bool { <$t>::is_nan(self) }
        }
    )*};
}
float_acc!(f32, f64);

macro_rules! int_acc {
    ($($t:ty),*) => {$(
        impl Acc for $t {
            const ZERO: Self = 0;
            const ONE: Self = 1;
            const NEG_INF: Self = <$t>::MIN;
            #[inline(always)] fn add(self, o: Self) -> Self { self.wrapping_add(o) }
            #[inline(always)] fn mul(self, o: Self) -> Self { self.wrapping_mul(o) }
            #[allow(unused_comparisons)]
            #[inline(always)] fn abs(self) -> Self { if self < 0 { (0 as $t).wrapping_sub(self) } else { self } }
            #[inline(always)] fn sqrt(self) -> Self { (self as f64).sqrt() as $t }
            #[inline(always)] fn ln(self) -> Self { (self as f64).ln() as $t }
            #[inline(always)] fn exp(self) -> Self { (self as f64).exp() as $t }
            #[inline(always)] fn sub(self, o: Self) -> Self { self.wrapping_sub(o) }
            #[inline(always)] fn div_n(self, n: usize) -> Self {
                if n == 0 { 0 } else { (self as i128 / n as i128) as $t }
            }
            #[inline(always)] fn is_nan(self) -> bool { false }
        }
    )*};
}
int_acc!(i8, i16, i32, i64, u8, u16, u32, u64);

/// A numeric element and its accumulator.
pub trait Num: Copy + Default + Send + Sync + PartialOrd + crossover_core::tensor::Element {
    type A: Acc;
    /// Lowest and highest values, the identities of max and min.
    const LOWEST: Self::A;
    const HIGHEST: Self::A;
    fn to_acc(self) -> Self::A;
    fn from_acc(a: Self::A) -> Self;
}

macro_rules! same {
    ($($t:ty: $lo:expr, $hi:expr);*) => {$(
        impl Num for $t {
            type A = $t;
            const LOWEST: $t = $lo;
            const HIGHEST: $t = $hi;
            #[inline(always)] fn to_acc(self) -> $t { self }
            #[inline(always)] fn from_acc(a: $t) -> $t { a }
        }
    )*};
}
same!(
    f32: f32::NEG_INFINITY, f32::INFINITY;
    f64: f64::NEG_INFINITY, f64::INFINITY;
    i8: i8::MIN, i8::MAX; i16: i16::MIN, i16::MAX; i32: i32::MIN, i32::MAX; i64: i64::MIN, i64::MAX;
    u8: u8::MIN, u8::MAX; u16: u16::MIN, u16::MAX; u32: u32::MIN, u32::MAX; u64: u64::MIN, u64::MAX
);

macro_rules! half_num {
    ($($t:ty),*) => {$(
        impl Num for $t {
            type A = f32;
            const LOWEST: f32 = f32::NEG_INFINITY;
            const HIGHEST: f32 = f32::INFINITY;
            #[inline(always)] fn to_acc(self) -> f32 { self.to_f32() }
            #[inline(always)] fn from_acc(a: f32) -> $t { <$t>::from_f32(a) }
        }
    )*};
}
half_num!(f16, bf16);

/// Whether `x` is unordered with itself (a NaN).
#[inline(always)]
pub fn is_nan<T: PartialOrd>(x: &T) -> bool {
    x.partial_cmp(x).is_none()
}

/// A total order for sorting: NaN sorts above everything and equals itself.
#[inline(always)]
pub fn cmp_nan_last<T: PartialOrd>(a: &T, b: &T) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match a.partial_cmp(b) {
        Some(o) => o,
        None => match (is_nan(a), is_nan(b)) {
            (true, true) => Equal,
            (true, false) => Greater,
            _ => Less,
        },
    }
}
