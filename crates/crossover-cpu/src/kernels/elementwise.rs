//! Elementwise kernels: one generic function per op group, instantiated per dtype by
//! the dispatch macros below. Broadcasting and parallelism come from
//! [`super::broadcast`].

pub(crate) mod num;
mod quant;

use crossover_core::op::ElementwiseOp as E;
use crossover_core::tensor::Element;
use crossover_core::{DType, Error, Result, Tensor};
use half::{bf16, f16};
use ndarray::{ArrayD, ArrayViewD, Zip};
use num_traits::{Float, NumCast, ToPrimitive};

use self::num::{Int, Num};
use super::broadcast::{binary, broadcast_all, unary, view_as, PARALLEL_MIN};
use super::Inputs;

/// Error for a dtype (or pair of dtypes) an op does not take.
fn dtype_error(op: &str, a: &Tensor, b: Option<&Tensor>) -> Error {
    match b {
        Some(b) if a.dtype() != b.dtype() => Error::InvalidArgument(format!(
            "{op} needs inputs of one type, got {} and {}",
            a.dtype(),
            b.dtype()
        )),
        _ => Error::Unsupported(format!("{op} on {} tensors", a.dtype())),
    }
}

/// Matches one tensor's dtype against the listed ones, binding a view of its elements to
/// `$a`: a view, so an input the caller lent is read in place.
macro_rules! one {
    ([$($v:ident),*], $t:expr, $op:expr, $a:ident => $body:expr) => {{
        let t: &Tensor = $t;
        match t.dtype() {
            $(DType::$v => {
                let $a = t.view::<crossover_core::element_type!($v)>()?;
                $body
            })*
            _ => return Err(dtype_error($op, t, None)),
        }
    }};
}

/// Matches two tensors of one of the listed dtypes (both the same), binding views.
macro_rules! pair {
    ([$($v:ident),*], $l:expr, $r:expr, $op:expr, |$a:ident, $b:ident| $body:expr) => {{
        let (l, r): (&Tensor, &Tensor) = ($l, $r);
        match (l.dtype(), r.dtype()) {
            $((DType::$v, DType::$v) => {
                let ($a, $b) = (
                    l.view::<crossover_core::element_type!($v)>()?,
                    r.view::<crossover_core::element_type!($v)>()?,
                );
                $body
            })*
            _ => return Err(dtype_error($op, l, Some(r))),
        }
    }};
}

/// Float element types with the type their math is done in (f32 for the half types).
trait Real: Num {
    type C: Float + Send + Sync;
    fn up(self) -> Self::C;
    fn down(c: Self::C) -> Self;
}

impl Real for f32 {
    type C = f32;
    #[inline]
    fn up(self) -> f32 {
        self
    }
    #[inline]
    fn down(c: f32) -> f32 {
        c
    }
}

impl Real for f64 {
    type C = f64;
    #[inline]
    fn up(self) -> f64 {
        self
    }
    #[inline]
    fn down(c: f64) -> f64 {
        c
    }
}

impl Real for f16 {
    type C = f32;
    #[inline]
    fn up(self) -> f32 {
        self.to_f32()
    }
    #[inline]
    fn down(c: f32) -> f16 {
        f16::from_f32(c)
    }
}

impl Real for bf16 {
    type C = f32;
    #[inline]
    fn up(self) -> f32 {
        self.to_f32()
    }
    #[inline]
    fn down(c: f32) -> bf16 {
        bf16::from_f32(c)
    }
}

/// A constant in the compute type `C`.
#[inline]
fn k<C: Float>(v: f64) -> C {
    <C as NumCast>::from(v).unwrap_or_else(C::nan)
}

#[inline]
fn round_half_even<C: Float>(v: C) -> C {
    let r = v.round();
    if (v - v.trunc()).abs() == k(0.5) {
        k::<C>(2.0) * (v / k(2.0)).round()
    } else {
        r
    }
}

#[inline]
fn sigmoid<C: Float>(v: C) -> C {
    C::one() / (C::one() + (-v).exp())
}

/// `ln(1 + e^v)` without overflow for large `v`.
#[inline]
fn softplus<C: Float>(v: C) -> C {
    v.max(C::zero()) + (-v.abs()).exp().ln_1p()
}

fn fmap<T: Real>(a: ArrayViewD<T>, f: impl Fn(T::C) -> T::C + Sync + Send) -> ArrayD<T> {
    unary(a, |&x| T::down(f(x.up())))
}

/// Unary ops on float tensors.
fn float_unary<T: Real>(op: &E, a: ArrayViewD<T>) -> Result<ArrayD<T>> {
    let zero = <T::C as num_traits::Zero>::zero();
    let one = <T::C as num_traits::One>::one();
    Ok(match *op {
        E::Sqrt => fmap(a, |v| v.sqrt()),
        E::Exp => fmap(a, |v| v.exp()),
        E::Log => fmap(a, |v| v.ln()),
        E::Erf => fmap(a, |v| k(num::erf(v.to_f64().unwrap_or(f64::NAN)))),
        E::Sin => fmap(a, |v| v.sin()),
        E::Cos => fmap(a, |v| v.cos()),
        E::Tan => fmap(a, |v| v.tan()),
        E::Asin => fmap(a, |v| v.asin()),
        E::Acos => fmap(a, |v| v.acos()),
        E::Atan => fmap(a, |v| v.atan()),
        E::Sinh => fmap(a, |v| v.sinh()),
        E::Cosh => fmap(a, |v| v.cosh()),
        E::Asinh => fmap(a, |v| v.asinh()),
        E::Acosh => fmap(a, |v| v.acosh()),
        E::Atanh => fmap(a, |v| v.atanh()),
        E::Ceil => fmap(a, |v| v.ceil()),
        E::Floor => fmap(a, |v| v.floor()),
        E::Round => fmap(a, round_half_even),
        E::Reciprocal => fmap(a, |v| one / v),
        E::Tanh => fmap(a, |v| v.tanh()),
        E::Sigmoid => fmap(a, sigmoid),
        E::LeakyRelu { alpha } => {
            let al: T::C = k(alpha as f64);
            fmap(a, move |v| if v < zero { v * al } else { v })
        }
        E::Elu { alpha } => {
            let al: T::C = k(alpha as f64);
            fmap(a, move |v| if v < zero { al * v.exp_m1() } else { v })
        }
        E::Selu { alpha, gamma } => {
            let (al, ga): (T::C, T::C) = (k(alpha as f64), k(gamma as f64));
            fmap(a, move |v| {
                if v > zero {
                    ga * v
                } else {
                    ga * al * v.exp_m1()
                }
            })
        }
        E::Celu { alpha } => {
            let al: T::C = k(alpha as f64);
            fmap(a, move |v| v.max(zero) + (al * (v / al).exp_m1()).min(zero))
        }
        E::Gelu { tanh: false } => {
            let r: T::C = k(std::f64::consts::FRAC_1_SQRT_2);
            fmap(a, move |v| {
                let e: T::C = k(num::erf((v * r).to_f64().unwrap_or(f64::NAN)));
                k::<T::C>(0.5) * v * (one + e)
            })
        }
        E::Gelu { tanh: true } => {
            let c: T::C = k((2.0 / std::f64::consts::PI).sqrt());
            let d: T::C = k(0.044715);
            fmap(a, move |v| {
                k::<T::C>(0.5) * v * (one + (c * (v + d * v * v * v)).tanh())
            })
        }
        E::HardSigmoid { alpha, beta } => {
            let (al, be): (T::C, T::C) = (k(alpha as f64), k(beta as f64));
            fmap(a, move |v| (al * v + be).min(one).max(zero))
        }
        E::HardSwish => {
            let sixth: T::C = k(1.0 / 6.0);
            let half: T::C = k(0.5);
            fmap(a, move |v| v * (v * sixth + half).min(one).max(zero))
        }
        E::Softplus => fmap(a, softplus),
        E::Softsign => fmap(a, move |v| v / (one + v.abs())),
        E::Mish => fmap(a, |v| v * softplus(v).tanh()),
        E::ThresholdedRelu { alpha } => {
            let al: T::C = k(alpha as f64);
            fmap(a, move |v| if v > al { v } else { zero })
        }
        E::Swish { alpha } => {
            let al: T::C = k(alpha as f64);
            fmap(a, move |v| v * sigmoid(al * v))
        }
        _ => return Err(Error::Unsupported(format!("{op:?} as a float map"))),
    })
}

/// Unary ops defined on every numeric type.
fn num_unary<T: Num>(op: &E, a: ArrayViewD<T>) -> Result<ArrayD<T>> {
    let zero = T::default();
    Ok(match *op {
        E::Abs => unary(a, |&v| Num::abs(v)),
        E::Neg => unary(a, |&v| Num::neg(v)),
        E::Sign => unary(a, |&v| Num::sign(v)),
        E::Relu => unary(a, |&v| if v > zero { v } else { zero }),
        E::Shrink { bias, lambd } => {
            let (b, l) = (bias as f64, lambd as f64);
            unary(a, |&v| {
                let f = v.to_f64();
                if f < -l {
                    T::from_f64(f + b)
                } else if f > l {
                    T::from_f64(f - b)
                } else {
                    zero
                }
            })
        }
        _ => return Err(Error::Unsupported(format!("{op:?} as a numeric map"))),
    })
}

fn float_test<T: Real>(op: &E, a: ArrayViewD<T>) -> ArrayD<bool> {
    match *op {
        E::IsInf {
            detect_positive,
            detect_negative,
        } => unary(a, |&v| {
            let v = v.up();
            v.is_infinite()
                && if v > <T::C as num_traits::Zero>::zero() {
                    detect_positive
                } else {
                    detect_negative
                }
        }),
        _ => unary(a, |&v| v.up().is_nan()),
    }
}

/// Binary arithmetic, and the pairwise step of Sum/Mean/Min/Max.
fn arith<T: Num>(op: &E, a: ArrayViewD<T>, b: ArrayViewD<T>) -> Result<ArrayD<T>> {
    let zero = T::default();
    match *op {
        E::Add | E::Sum | E::Mean => binary(a, b, |&p, &q| p.add(q)),
        E::Sub => binary(a, b, |&p, &q| p.sub(q)),
        E::Mul => binary(a, b, |&p, &q| p.mul(q)),
        E::Div => binary(a, b, |&p, &q| p.div(q)),
        E::Mod { fmod: true } => binary(a, b, |&p, &q| p.fmod(q)),
        E::Mod { fmod: false } => binary(a, b, |&p, &q| p.floor_mod(q)),
        E::Min => binary(a, b, |&p, &q| num::min(p, q)),
        E::Max => binary(a, b, |&p, &q| num::max(p, q)),
        E::PRelu => binary(a, b, |&p, &s| if p < zero { p.mul(s) } else { p }),
        _ => Err(Error::Unsupported(format!("{op:?} as arithmetic"))),
    }
}

fn compare<T: PartialOrd + Clone + Sync>(
    op: &E,
    a: ArrayViewD<T>,
    b: ArrayViewD<T>,
) -> Result<ArrayD<bool>> {
    match *op {
        E::Equal => binary(a, b, |p, q| p == q),
        E::Less => binary(a, b, |p, q| p < q),
        E::Greater => binary(a, b, |p, q| p > q),
        E::LessOrEqual => binary(a, b, |p, q| p <= q),
        E::GreaterOrEqual => binary(a, b, |p, q| p >= q),
        _ => Err(Error::Unsupported(format!("{op:?} as a comparison"))),
    }
}

fn bitwise<T: Int>(op: &E, a: ArrayViewD<T>, b: ArrayViewD<T>) -> Result<ArrayD<T>> {
    let zero = T::default();
    match *op {
        E::BitwiseAnd => binary(a, b, |&p, &q| p.and(q)),
        E::BitwiseOr => binary(a, b, |&p, &q| p.or(q)),
        E::BitwiseXor => binary(a, b, |&p, &q| p.xor(q)),
        // Shifts by a negative amount or by the width or more fill with the sign.
        E::BitShift { left: true } => binary(a, b, |&p, &q| {
            let n = q.amount();
            if (0..T::BITS as i64).contains(&n) {
                p.shl(n as u32)
            } else {
                zero
            }
        }),
        E::BitShift { left: false } => binary(a, b, |&p, &q| {
            let n = q.amount();
            if (0..T::BITS as i64).contains(&n) {
                p.shr(n as u32)
            } else if p.is_negative() {
                zero.not()
            } else {
                zero
            }
        }),
        _ => Err(Error::Unsupported(format!("{op:?} as a bitwise op"))),
    }
}

fn powf<T: Real>(a: ArrayViewD<T>, b: ArrayViewD<T>) -> Result<ArrayD<T>> {
    binary(a, b, |&p, &q| T::down(p.up().powf(q.up())))
}

/// `Pow`: the result has the base's type; the exponent may be of any numeric type.
fn pow(base: &Tensor, exp: &Tensor) -> Result<Tensor> {
    const NAME: &str = "Pow";
    let bd = base.dtype();
    if bd.is_float() {
        let e = exp.cast(bd)?;
        return Ok(pair!([F32, F64, F16, BF16], base, &e, NAME, |a, b| {
            Tensor::from(powf(a.view(), b.view())?)
        }));
    }
    if !bd.is_int() {
        return Err(dtype_error(NAME, base, None));
    }
    let ed = exp.dtype();
    let out = if ed.is_int() {
        let (b, e) = (
            base.cast(crossover_core::DType::I64)?,
            exp.cast(crossover_core::DType::I64)?,
        );
        Tensor::from(binary(b.view::<i64>()?, e.view::<i64>()?, |&p, &q| {
            Int::pow(p, q)
        })?)
    } else if ed.is_float() {
        let (b, e) = (
            base.cast(crossover_core::DType::F64)?,
            exp.cast(crossover_core::DType::F64)?,
        );
        Tensor::from(binary(b.view::<f64>()?, e.view::<f64>()?, |&p, &q| {
            p.powf(q)
        })?)
    } else {
        return Err(dtype_error(NAME, exp, None));
    };
    out.cast(bd)
}

/// Folds Sum/Mean/Min/Max over all present inputs, pairwise with broadcasting.
fn variadic(op: &E, name: &str, x: &Inputs) -> Result<Tensor> {
    let ins = x.present();
    let (first, rest) = ins
        .split_first()
        .ok_or_else(|| Error::InvalidArgument(format!("{name} needs at least one input")))?;
    let mut acc = (*first).clone();
    for t in rest {
        acc = pair!(
            [F32, F64, F16, BF16, I8, I16, I32, I64, U8, U16, U32, U64],
            &acc,
            *t,
            name,
            |a, b| Tensor::from(arith(op, a.view(), b.view())?)
        );
    }
    if matches!(op, E::Mean) && ins.len() > 1 {
        let n = ins.len();
        acc = one!([F32, F64, F16, BF16], &acc, name, a => {
            Tensor::from(unary(a.view(), |&v| v.div(Num::from_usize(n))))
        });
    }
    Ok(acc)
}

fn where_<T: Element>(
    c: ArrayViewD<bool>,
    a: ArrayViewD<T>,
    b: ArrayViewD<T>,
) -> Result<ArrayD<T>> {
    let shape = broadcast_all(&[c.shape(), a.shape(), b.shape()])?;
    let (cv, av, bv) = (
        view_as(&c, &shape)?,
        view_as(&a, &shape)?,
        view_as(&b, &shape)?,
    );
    let z = Zip::from(&cv).and(&av).and(&bv);
    let pick = |&c: &bool, p: &T, q: &T| if c { p.clone() } else { q.clone() };
    Ok(if shape.iter().product::<usize>() >= PARALLEL_MIN {
        z.par_map_collect(pick)
    } else {
        z.map_collect(pick)
    })
}

/// A Clip bound given as an input: a one-element tensor of the data's type.
fn bound<T: Num>(t: Option<&Tensor>) -> Result<Option<T>> {
    let Some(t) = t else { return Ok(None) };
    let a = t.arc::<T>()?;
    match a.len() {
        0 => Ok(None),
        1 => Ok(a.iter().next().copied()),
        _ => Err(Error::InvalidArgument(format!(
            "Clip bounds must be scalars, got shape {:?}",
            a.shape()
        ))),
    }
}

fn clip<T: Num>(
    a: ArrayViewD<T>,
    attr: (Option<f32>, Option<f32>),
    x: &Inputs,
) -> Result<ArrayD<T>> {
    let lo = match attr.0 {
        Some(v) => Some(T::from_f64(v as f64)),
        None => bound::<T>(x.opt(1))?,
    };
    let hi = match attr.1 {
        Some(v) => Some(T::from_f64(v as f64)),
        None => bound::<T>(x.opt(2))?,
    };
    Ok(match (lo, hi) {
        (Some(l), Some(h)) => unary(a, |&v| num::min(num::max(v, l), h)),
        (Some(l), None) => unary(a, |&v| num::max(v, l)),
        (None, Some(h)) => unary(a, |&v| num::min(v, h)),
        (None, None) => a.to_owned(),
    })
}

fn swiglu<T: Real>(a: ArrayViewD<T>, b: ArrayViewD<T>, alpha: f32) -> Result<ArrayD<T>> {
    let al: T::C = k(alpha as f64);
    binary(a, b, |&p, &q| {
        let p = p.up();
        T::down(p * sigmoid(al * p) * q.up())
    })
}

pub fn eval(op: &E, x: &Inputs) -> Result<Vec<Tensor>> {
    let name: &'static str = op.into();
    let out = match op {
        E::Abs | E::Neg | E::Sign | E::Relu | E::Shrink { .. } => one!(
            [F32, F64, F16, BF16, I8, I16, I32, I64, U8, U16, U32, U64],
            x.get(0)?,
            name,
            a => Tensor::from(num_unary(op, a.view())?)
        ),
        E::IsNaN | E::IsInf { .. } => one!([F32, F64, F16, BF16], x.get(0)?, name, a => {
            Tensor::from(float_test(op, a.view()))
        }),
        E::Not => one!([Bool], x.get(0)?, name, a => Tensor::from(unary(a.view(), |&v| !v))),
        E::BitwiseNot => one!(
            [I8, I16, I32, I64, U8, U16, U32, U64],
            x.get(0)?,
            name,
            a => Tensor::from(unary(a.view(), |&v| Int::not(v)))
        ),
        E::Sqrt
        | E::Exp
        | E::Log
        | E::Erf
        | E::Sin
        | E::Cos
        | E::Tan
        | E::Asin
        | E::Acos
        | E::Atan
        | E::Sinh
        | E::Cosh
        | E::Asinh
        | E::Acosh
        | E::Atanh
        | E::Ceil
        | E::Floor
        | E::Round
        | E::Reciprocal
        | E::Tanh
        | E::Sigmoid
        | E::LeakyRelu { .. }
        | E::Elu { .. }
        | E::Selu { .. }
        | E::Celu { .. }
        | E::Gelu { .. }
        | E::HardSigmoid { .. }
        | E::HardSwish
        | E::Softplus
        | E::Softsign
        | E::Mish
        | E::ThresholdedRelu { .. }
        | E::Swish { .. } => one!([F32, F64, F16, BF16], x.get(0)?, name, a => {
            Tensor::from(float_unary(op, a.view())?)
        }),
        E::Add | E::Sub | E::Mul | E::Div | E::Mod { .. } | E::PRelu => pair!(
            [F32, F64, F16, BF16, I8, I16, I32, I64, U8, U16, U32, U64],
            x.get(0)?,
            x.get(1)?,
            name,
            |a, b| Tensor::from(arith(op, a.view(), b.view())?)
        ),
        E::Pow => pow(x.get(0)?, x.get(1)?)?,
        E::Equal | E::Less | E::Greater | E::LessOrEqual | E::GreaterOrEqual => pair!(
            [F32, F64, F16, BF16, I8, I16, I32, I64, U8, U16, U32, U64, Bool, String],
            x.get(0)?,
            x.get(1)?,
            name,
            |a, b| Tensor::from(compare(op, a.view(), b.view())?)
        ),
        E::And | E::Or | E::Xor => {
            let (a, b) = (x.get(0)?.view::<bool>()?, x.get(1)?.view::<bool>()?);
            Tensor::from(match op {
                E::And => binary(a, b, |&p, &q| p & q)?,
                E::Or => binary(a, b, |&p, &q| p | q)?,
                _ => binary(a, b, |&p, &q| p ^ q)?,
            })
        }
        E::BitwiseAnd | E::BitwiseOr | E::BitwiseXor | E::BitShift { .. } => pair!(
            [I8, I16, I32, I64, U8, U16, U32, U64],
            x.get(0)?,
            x.get(1)?,
            name,
            |a, b| Tensor::from(bitwise(op, a.view(), b.view())?)
        ),
        E::Sum | E::Mean | E::Min | E::Max => variadic(op, name, x)?,
        E::Where => {
            let c = x.get(0)?.view::<bool>()?;
            pair!(
                [F32, F64, F16, BF16, I8, I16, I32, I64, U8, U16, U32, U64, Bool, String],
                x.get(1)?,
                x.get(2)?,
                name,
                |a, b| Tensor::from(where_(c.view(), a.view(), b.view())?)
            )
        }
        E::Clip { min, max } => one!(
            [F32, F64, F16, BF16, I8, I16, I32, I64, U8, U16, U32, U64],
            x.get(0)?,
            name,
            a => Tensor::from(clip(a.view(), (*min, *max), x)?)
        ),
        E::SwiGLU { alpha } => pair!([F32, F64, F16, BF16], x.get(0)?, x.get(1)?, name, |a, b| {
            Tensor::from(swiglu(a.view(), b.view(), *alpha)?)
        }),
        E::Cast { to, .. } => x.get(0)?.cast(*to)?,
        E::CastLike { .. } => x.get(0)?.cast(x.get(1)?.dtype())?,
        E::BitCast { to } => quant::bitcast(x.get(0)?, *to)?,
        E::QuantizeLinear {
            axis,
            saturate: _,
            block_size,
            output_dtype,
        } => quant::quantize(x, *axis, *block_size, *output_dtype)?,
        E::DequantizeLinear {
            axis,
            block_size,
            output_dtype,
        } => quant::dequantize(x, *axis, *block_size, *output_dtype)?,
        E::DynamicQuantizeLinear => return quant::dynamic_quantize(x.get(0)?),
    };
    Ok(vec![out])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossover_core::DType;

    fn run(op: E, ins: &[&Tensor]) -> Result<Vec<Tensor>> {
        let v: Vec<Option<&Tensor>> = ins.iter().map(|t| Some(*t)).collect();
        eval(&op, &Inputs(&v))
    }

    fn f32s(t: &Tensor) -> Vec<f32> {
        t.view::<f32>().unwrap().iter().copied().collect()
    }

    #[test]
    fn broadcasting_and_shape_errors() {
        let a = Tensor::from_vec(&[2, 3], vec![1f32, 2., 3., 4., 5., 6.]).unwrap();
        let b = Tensor::from_vec(&[3], vec![10f32, 20., 30.]).unwrap();
        let out = run(E::Add, &[&a, &b]).unwrap();
        assert_eq!(f32s(&out[0]), vec![11., 22., 33., 14., 25., 36.]);
        let c = Tensor::from_vec(&[2], vec![1f32, 2.]).unwrap();
        assert!(run(E::Add, &[&a, &c]).is_err());
        let i = Tensor::from_vec(&[3], vec![1i32, 2, 3]).unwrap();
        assert!(matches!(
            run(E::Mul, &[&a, &i]),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn integer_division_and_mod() {
        let a = Tensor::from_vec(&[3], vec![-7i32, 7, 5]).unwrap();
        let b = Tensor::from_vec(&[3], vec![2i32, -3, 0]).unwrap();
        let d = run(E::Div, &[&a, &b]).unwrap();
        assert_eq!(d[0].to_i64_vec().unwrap(), vec![-3, -2, 0]);
        let m = run(E::Mod { fmod: false }, &[&a, &b]).unwrap();
        assert_eq!(m[0].to_i64_vec().unwrap(), vec![1, -2, 0]);
    }

    #[test]
    fn shifts_out_of_range() {
        let a = Tensor::from_vec(&[3], vec![-8i8, 1, 1]).unwrap();
        let b = Tensor::from_vec(&[3], vec![9i8, -1, 7]).unwrap();
        let r = run(E::BitShift { left: false }, &[&a, &b]).unwrap();
        assert_eq!(r[0].to_i64_vec().unwrap(), vec![-1, 0, 0]);
        let l = run(E::BitShift { left: true }, &[&a, &b]).unwrap();
        assert_eq!(l[0].to_i64_vec().unwrap(), vec![0, 0, -128]);
    }

    #[test]
    fn variadic_mean_and_where() {
        let a = Tensor::from_vec(&[2], vec![1f32, 2.]).unwrap();
        let b = Tensor::scalar(3f32);
        let m = run(E::Mean, &[&a, &b]).unwrap();
        assert_eq!(f32s(&m[0]), vec![2., 2.5]);
        assert!(run(E::Max, &[]).is_err());
        let c = Tensor::from_vec(&[2], vec![true, false]).unwrap();
        let w = run(E::Where, &[&c, &a, &b]).unwrap();
        assert_eq!(f32s(&w[0]), vec![1., 3.]);
    }

    #[test]
    fn round_and_clip() {
        let a = Tensor::from_vec(&[4], vec![0.5f32, 1.5, 2.5, -2.5]).unwrap();
        assert_eq!(
            f32s(&run(E::Round, &[&a]).unwrap()[0]),
            vec![0., 2., 2., -2.]
        );
        let i = Tensor::from_vec(&[3], vec![-5i8, 0, 100]).unwrap();
        let lo = Tensor::scalar(-1i8);
        let v: Vec<Option<&Tensor>> = vec![Some(&i), Some(&lo), None];
        let r = eval(
            &E::Clip {
                min: None,
                max: None,
            },
            &Inputs(&v),
        )
        .unwrap();
        assert_eq!(r[0].to_i64_vec().unwrap(), vec![-1, 0, 100]);
        assert_eq!(r[0].dtype(), DType::I8);
    }
}
