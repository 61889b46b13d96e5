//! Per-dtype arithmetic with the semantics ONNX (and numpy) give it: integers wrap,
//! division by zero yields 0 instead of trapping, floats propagate NaN through Min/Max.

use crossover_core::tensor::Element;
use half::{bf16, f16};

pub trait Num: Element + Copy + PartialOrd {
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn div(self, o: Self) -> Self;
    /// Remainder with the sign of the dividend (C `fmod`).
    fn fmod(self, o: Self) -> Self;
    /// Remainder with the sign of the divisor (Python `%`).
    fn floor_mod(self, o: Self) -> Self;
    fn abs(self) -> Self;
    fn neg(self) -> Self;
    fn sign(self) -> Self;
    fn to_f64(self) -> f64;
    /// Saturating conversion, NaN to 0 for integers.
    fn from_f64(v: f64) -> Self;
    fn from_usize(v: usize) -> Self;
}

/// NaN-propagating minimum (numpy `minimum`).
#[inline]
pub fn min<T: PartialOrd>(a: T, b: T) -> T {
    #[allow(clippy::eq_op)]
    if a < b || a != a {
        a
    } else {
        b
    }
}

/// NaN-propagating maximum (numpy `maximum`).
#[inline]
pub fn max<T: PartialOrd>(a: T, b: T) -> T {
    #[allow(clippy::eq_op)]
    if a > b || a != a {
        a
    } else {
        b
    }
}

macro_rules! int_common {
    ($t:ty) => {
        #[inline]
        fn add(self, o: Self) -> Self {
            self.wrapping_add(o)
        }
        #[inline]
        fn sub(self, o: Self) -> Self {
            self.wrapping_sub(o)
        }
        #[inline]
        fn mul(self, o: Self) -> Self {
            self.wrapping_mul(o)
        }
        #[inline]
        fn div(self, o: Self) -> Self {
            if o == 0 {
                0
            } else {
                self.wrapping_div(o)
            }
        }
        #[inline]
        fn fmod(self, o: Self) -> Self {
            if o == 0 {
                0
            } else {
                self.wrapping_rem(o)
            }
        }
        fn to_f64(self) -> f64 {
            self as f64
        }
        fn from_f64(v: f64) -> Self {
            v as $t
        }
        fn from_usize(v: usize) -> Self {
            v as $t
        }
    };
}

macro_rules! signed {
    ($($t:ty),*) => {$(
        impl Num for $t {
            int_common!($t);
            #[inline]
            fn floor_mod(self, o: Self) -> Self {
                let r = self.fmod(o);
                if r != 0 && ((r < 0) != (o < 0)) { r.wrapping_add(o) } else { r }
            }
            fn abs(self) -> Self { self.wrapping_abs() }
            fn neg(self) -> Self { self.wrapping_neg() }
            fn sign(self) -> Self { self.signum() }
        }
    )*};
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl Num for $t {
            int_common!($t);
            #[inline]
            fn floor_mod(self, o: Self) -> Self { self.fmod(o) }
            fn abs(self) -> Self { self }
            fn neg(self) -> Self { self.wrapping_neg() }
            fn sign(self) -> Self { (self > 0) as $t }
        }
    )*};
}

signed!(i8, i16, i32, i64);
unsigned!(u8, u16, u32, u64);

/// Python-style float remainder: the result takes the divisor's sign.
#[inline]
fn float_floor_mod(a: f64, b: f64) -> f64 {
    let r = a % b;
    if r == 0.0 {
        0f64.copysign(b)
    } else if (r < 0.0) != (b < 0.0) {
        r + b
    } else {
        r
    }
}

#[inline]
fn float_floor_mod32(a: f32, b: f32) -> f32 {
    let r = a % b;
    if r == 0.0 {
        0f32.copysign(b)
    } else if (r < 0.0) != (b < 0.0) {
        r + b
    } else {
        r
    }
}

#[inline]
fn fsign(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        v
    }
}

macro_rules! float {
    ($t:ty, $fm:ident) => {
        impl Num for $t {
            #[inline]
            fn add(self, o: Self) -> Self {
                self + o
            }
            #[inline]
            fn sub(self, o: Self) -> Self {
                self - o
            }
            #[inline]
            fn mul(self, o: Self) -> Self {
                self * o
            }
            #[inline]
            fn div(self, o: Self) -> Self {
                self / o
            }
            #[inline]
            fn fmod(self, o: Self) -> Self {
                self % o
            }
            #[inline]
            fn floor_mod(self, o: Self) -> Self {
                $fm(self, o)
            }
            fn abs(self) -> Self {
                self.abs()
            }
            fn neg(self) -> Self {
                -self
            }
            fn sign(self) -> Self {
                fsign(self as f64) as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn from_usize(v: usize) -> Self {
                v as $t
            }
        }
    };
}

float!(f32, float_floor_mod32);
float!(f64, float_floor_mod);

macro_rules! half_float {
    ($($t:ty),*) => {$(
        impl Num for $t {
            #[inline]
            fn add(self, o: Self) -> Self { <$t>::from_f32(self.to_f32() + o.to_f32()) }
            #[inline]
            fn sub(self, o: Self) -> Self { <$t>::from_f32(self.to_f32() - o.to_f32()) }
            #[inline]
            fn mul(self, o: Self) -> Self { <$t>::from_f32(self.to_f32() * o.to_f32()) }
            #[inline]
            fn div(self, o: Self) -> Self { <$t>::from_f32(self.to_f32() / o.to_f32()) }
            #[inline]
            fn fmod(self, o: Self) -> Self { <$t>::from_f32(self.to_f32() % o.to_f32()) }
            #[inline]
            fn floor_mod(self, o: Self) -> Self {
                <$t>::from_f32(float_floor_mod32(self.to_f32(), o.to_f32()))
            }
            fn abs(self) -> Self { <$t>::from_f32(self.to_f32().abs()) }
            fn neg(self) -> Self { -self }
            fn sign(self) -> Self { <$t>::from_f64(fsign(self.to_f64())) }
            fn to_f64(self) -> f64 { self.to_f64() }
            fn from_f64(v: f64) -> Self { <$t>::from_f64(v) }
            fn from_usize(v: usize) -> Self { <$t>::from_f64(v as f64) }
        }
    )*};
}

half_float!(f16, bf16);

/// Integer element types, for bitwise ops and shifts.
pub trait Int: Num + Eq {
    const BITS: u32;
    fn and(self, o: Self) -> Self;
    fn or(self, o: Self) -> Self;
    fn xor(self, o: Self) -> Self;
    fn not(self) -> Self;
    /// Shift amount as read from the element (negative when signed and below 0).
    fn amount(self) -> i64;
    fn shl(self, n: u32) -> Self;
    /// Arithmetic for signed, logical for unsigned.
    fn shr(self, n: u32) -> Self;
    fn is_negative(self) -> bool;
    fn pow(self, e: Self) -> Self;
}

macro_rules! int_ops {
    ($($t:ty),*) => {$(
        impl Int for $t {
            const BITS: u32 = <$t>::BITS;
            fn and(self, o: Self) -> Self { self & o }
            fn or(self, o: Self) -> Self { self | o }
            fn xor(self, o: Self) -> Self { self ^ o }
            fn not(self) -> Self { !self }
            fn amount(self) -> i64 { self as i64 }
            fn shl(self, n: u32) -> Self { self.wrapping_shl(n) }
            fn shr(self, n: u32) -> Self { self.wrapping_shr(n) }
            #[allow(unused_comparisons)]
            fn is_negative(self) -> bool { self < 0 }
            fn pow(self, e: Self) -> Self {
                #[allow(unused_comparisons)]
                if e < 0 {
                    // Only 1 and -1 have integer reciprocals.
                    return match self as i64 { 1 => 1 as $t, -1 => if e % 2 == 0 { 1 as $t } else { self }, _ => 0 };
                }
                let mut base = self;
                let mut e = e as u64;
                let mut acc: $t = 1;
                while e > 0 {
                    if e & 1 == 1 { acc = acc.wrapping_mul(base); }
                    base = base.wrapping_mul(base);
                    e >>= 1;
                }
                acc
            }
        }
    )*};
}

int_ops!(i8, i16, i32, i64, u8, u16, u32, u64);

/// The error function, accurate to about 1e-7 relative.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    if a < 0.5 {
        // Maclaurin series: converges fast near 0 and keeps relative precision.
        let x2 = x * x;
        let mut term = x;
        let mut sum = x;
        for n in 1..40 {
            term *= -x2 / n as f64;
            let add = term / (2 * n + 1) as f64;
            sum += add;
            if add.abs() < 1e-17 * sum.abs() {
                break;
            }
        }
        return sum * std::f64::consts::FRAC_2_SQRT_PI;
    }
    // Chebyshev fit of erfc (Numerical Recipes), fractional error below 1.2e-7.
    let t = 1.0 / (1.0 + 0.5 * a);
    let poly = -a * a - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if x >= 0.0 {
        1.0 - erfc
    } else {
        erfc - 1.0
    }
}

/// The error function in f32 as a branch-free rational function of x² (the form Eigen
/// and XLA use), so loops over slices vectorise; within 2e-7 of the exact value.
#[inline]
pub fn erf_f32(x: f32) -> f32 {
    const ALPHA: [f32; 7] = [
        -2.726_142_3e-10,
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906e-4,
        -2.954_6e-3,
        -1.609_603_3e-2,
    ];
    const BETA: [f32; 5] = [
        -1.456_607_2e-5,
        -2.133_740_6e-4,
        -1.682_827e-3,
        -7.373_329e-3,
        -1.426_474e-2,
    ];
    // Past ±4 erf is ±1 in f32; the clamp keeps the polynomials in range (NaN passes through).
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    // Plain multiply-adds: `mul_add` is a libm call on x86-64 without FMA, and 20x slower.
    let p = ALPHA.iter().fold(0.0f32, |acc, &c| acc * x2 + c) * x;
    let q = BETA.iter().fold(0.0f32, |acc, &c| acc * x2 + c);
    p / q
}

/// `e^x` in f32, branch-free so loops over slices vectorise: x = n·ln2 + r, a degree-6
/// polynomial (Cephes' coefficients) for e^r, 2^n built in the exponent bits. Within
/// 2 ulp of `f32::exp` on [-87, 88]; inputs below -87.3 give about 1e-38, not 0.
#[inline]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so n·LN2_HI is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.7);
    let t = x * LOG2_E + ROUND;
    let n = t - ROUND;
    // The integer n, read off the bits: `n as i32` saturates, which x86 does one lane at
    // a time, and the whole loop stops vectorising.
    let ni = t.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = [
        1.987_569_2e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_65,
        0.5,
    ]
    .iter()
    .fold(0.0f32, |acc, &c| acc * r + c);
    let er = p * r * r + r + 1.0;
    er * f32::from_bits(((ni + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    #[test]
    fn erf_f32_matches_the_f64_reference() {
        let mut worst = 0.0f64;
        for i in -6000..=6000 {
            let x = i as f32 / 1000.0;
            let err = (super::erf_f32(x) as f64 - super::erf(x as f64)).abs();
            worst = worst.max(err);
        }
        assert!(worst < 5e-7, "erf_f32 is off by up to {worst}");
        assert!(super::erf_f32(f32::NAN).is_nan());
        let mut worst = 0.0f32;
        for i in -8700..=8800 {
            let x = i as f32 / 100.0 + 0.003;
            let (got, want) = (super::exp_f32(x), x.exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 4e-7, "exp_f32 is off by up to {worst} relative");
        assert!(super::exp_f32(f32::NEG_INFINITY) < 1e-37);
        assert!((super::erf_f32(f32::INFINITY) - 1.0).abs() < 1e-6);
        assert!((super::erf_f32(f32::NEG_INFINITY) + 1.0).abs() < 1e-6);
    }

    use super::*;

    #[test]
    fn integer_semantics() {
        assert_eq!(7i32.div(0), 0);
        assert_eq!((-7i32).div(2), -3);
        assert_eq!((-7i32).floor_mod(3), 2);
        assert_eq!(7i32.floor_mod(-3), -2);
        assert_eq!((-7i32).fmod(3), -1);
        assert_eq!(Num::abs(i8::MIN), i8::MIN);
        assert_eq!(Num::neg(i8::MIN), i8::MIN);
        assert_eq!(3i64.pow(4), 81);
    }

    #[test]
    fn float_semantics() {
        assert_eq!((-1.0f64).floor_mod(f64::INFINITY), f64::INFINITY);
        assert_eq!(5.5f32.floor_mod(-2.0), -0.5);
        assert!(min(f32::NAN, 1.0).is_nan());
        assert!(max(1.0, f32::NAN).is_nan());
        assert!((erf(0.3) - 0.328_626_759_459_127_4).abs() < 1e-12);
        assert!((erf(-1.5) + 0.966_105_146_475_310_7).abs() < 2e-7);
    }
}
