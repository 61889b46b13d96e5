//! Matrix-product kernels.

mod einsum;
pub(crate) mod gemm;
pub(crate) mod packed;

use crossover_core::op::LinalgOp;
use crossover_core::{invalid, DType, Error, Result, Tensor};
use ndarray::{ArrayD, ArrayViewD, Axis, Ix2, IxDyn, Zip};
use num_traits::NumCast;

use super::broadcast::{binary, view_as};
use super::Inputs;
use gemm::{gemm, gemm_int, matmul_int, matmul_real, IntElem, Real};

pub fn eval(op: &LinalgOp, x: &Inputs) -> Result<Vec<Tensor>> {
    let out = match op {
        LinalgOp::MatMul => matmul(x.get(0)?, x.get(1)?)?,
        LinalgOp::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => gemm_op(x, *alpha, *beta, *trans_a, *trans_b)?,
        LinalgOp::Einsum { equation } => einsum::eval(equation, &x.present())?,
        LinalgOp::MatMulInteger => matmul_integer(x)?,
        LinalgOp::QLinearMatMul => qlinear_matmul(x)?,
        LinalgOp::Det => det(x.get(0)?)?,
    };
    Ok(vec![out])
}

fn same_dtype(op: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dtype() != b.dtype() {
        return Err(invalid!(
            "{op} needs operands of one type, got {} and {}",
            a.dtype(),
            b.dtype()
        ));
    }
    Ok(())
}

/// Half-precision operands are multiplied in f32 and rounded back.
fn via_f32(t: &Tensor) -> Result<ArrayD<f32>> {
    Ok(t.cast(DType::F32)?.view::<f32>()?.to_owned())
}

fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    same_dtype("MatMul", a, b)?;
    // By dtype, through `view`: an input borrowed from the caller is read in place.
    macro_rules! by {
        ($f:ident, $t:ty) => {
            $f(a.view::<$t>()?, b.view::<$t>()?)?.into()
        };
    }
    Ok(match a.dtype() {
        DType::F32 => by!(matmul_real, f32),
        DType::F64 => by!(matmul_real, f64),
        DType::F16 | DType::BF16 => {
            let y = matmul_real(via_f32(a)?.view(), via_f32(b)?.view())?;
            Tensor::from(y).cast(a.dtype())?
        }
        DType::I8 => by!(matmul_int, i8),
        DType::I16 => by!(matmul_int, i16),
        DType::I32 => by!(matmul_int, i32),
        DType::I64 => by!(matmul_int, i64),
        DType::U8 => by!(matmul_int, u8),
        DType::U16 => by!(matmul_int, u16),
        DType::U32 => by!(matmul_int, u32),
        DType::U64 => by!(matmul_int, u64),
        DType::Bool | DType::String => {
            return Err(Error::Unsupported(format!(
                "MatMul on {} tensors",
                a.dtype()
            )))
        }
    })
}

/// Gemm's operands as matrices, transposed (as strided views) where asked.
fn gemm_operands<'a, T>(
    a: ArrayViewD<'a, T>,
    b: ArrayViewD<'a, T>,
    trans_a: bool,
    trans_b: bool,
) -> Result<(ndarray::ArrayView2<'a, T>, ndarray::ArrayView2<'a, T>)> {
    let two = |v: ArrayViewD<'a, T>| {
        let s = v.shape().to_vec();
        v.into_dimensionality::<Ix2>()
            .map_err(|_| invalid!("Gemm needs 2-D operands, got shape {s:?}"))
    };
    let (a, b) = (two(a)?, two(b)?);
    let a = if trans_a { a.reversed_axes() } else { a };
    let b = if trans_b { b.reversed_axes() } else { b };
    if a.ncols() != b.nrows() {
        return Err(invalid!(
            "Gemm: {:?} and {:?} do not chain",
            a.shape(),
            b.shape()
        ));
    }
    Ok((a, b))
}

/// Gemm's C broadcast to (M, N), copied into the output it accumulates into.
fn gemm_c<T: Clone + num_traits::Zero>(
    c: Option<ArrayViewD<T>>,
    m: usize,
    n: usize,
) -> Result<ndarray::Array2<T>> {
    match c {
        None => Ok(ndarray::Array2::zeros((m, n))),
        Some(c) => Ok(view_as(&c, &[m, n])?
            .into_dimensionality::<Ix2>()
            .expect("broadcast to two axes")
            .to_owned()),
    }
}

fn gemm_real<'a, T: Real>(
    a: ArrayViewD<'a, T>,
    b: ArrayViewD<'a, T>,
    c: Option<ArrayViewD<'a, T>>,
    alpha: f32,
    beta: f32,
    ta: bool,
    tb: bool,
) -> Result<ArrayD<T>> {
    let (a, b) = gemm_operands(a, b, ta, tb)?;
    let beta = if c.is_some() { beta } else { 0.0 };
    let mut y = gemm_c(c, a.nrows(), b.ncols())?;
    let cast = |v: f32| T::from(v).expect("f32 fits every float type");
    gemm(cast(alpha), a, b, cast(beta), y.view_mut())?;
    Ok(y.into_dyn())
}

fn gemm_integer<'a, T: IntElem + NumCast + num_traits::Zero + Clone>(
    a: ArrayViewD<'a, T>,
    b: ArrayViewD<'a, T>,
    c: Option<ArrayViewD<'a, T>>,
    alpha: f32,
    beta: f32,
    ta: bool,
    tb: bool,
) -> Result<ArrayD<T>> {
    let (a, b) = gemm_operands(a, b, ta, tb)?;
    let (m, n) = (a.nrows(), b.ncols());
    let cast = |v: f32| {
        T::from(v).ok_or_else(|| Error::Unsupported(format!("integer Gemm with factor {v}")))
    };
    let (alpha, beta) = (cast(alpha)?, cast(beta)?);
    let mut y = ndarray::Array2::zeros((m, n));
    gemm_int(a, b, y.view_mut())?;
    if let Some(c) = c {
        let c = gemm_c(Some(c), m, n)?;
        Zip::from(&mut y)
            .and(&c)
            .for_each(|y, &c| *y = alpha.wrapping_mul(y).wrapping_add(&beta.wrapping_mul(&c)));
    } else {
        y.mapv_inplace(|v| alpha.wrapping_mul(&v));
    }
    Ok(y.into_dyn())
}

fn gemm_op(x: &Inputs, alpha: f32, beta: f32, ta: bool, tb: bool) -> Result<Tensor> {
    let (a, b, c) = (x.get(0)?, x.get(1)?, x.opt(2));
    same_dtype("Gemm", a, b)?;
    if let Some(c) = c {
        same_dtype("Gemm", a, c)?;
    }
    macro_rules! run {
        ($f:ident, $t:ty) => {
            $f::<$t>(
                a.view()?,
                b.view()?,
                c.map(|c| c.view::<$t>()).transpose()?,
                alpha,
                beta,
                ta,
                tb,
            )?
            .into()
        };
    }
    Ok(match a.dtype() {
        DType::F32 => run!(gemm_real, f32),
        DType::F64 => run!(gemm_real, f64),
        DType::F16 | DType::BF16 => {
            let c = c.map(via_f32).transpose()?;
            let y = gemm_real::<f32>(
                via_f32(a)?.view(),
                via_f32(b)?.view(),
                c.as_ref().map(|c| c.view()),
                alpha,
                beta,
                ta,
                tb,
            )?;
            Tensor::from(y).cast(a.dtype())?
        }
        DType::I32 => run!(gemm_integer, i32),
        DType::I64 => run!(gemm_integer, i64),
        DType::U32 => run!(gemm_integer, u32),
        DType::U64 => run!(gemm_integer, u64),
        other => return Err(Error::Unsupported(format!("Gemm on {other} tensors"))),
    })
}

/// An 8-bit tensor minus its zero point, as f64: products and sums of such values stay
/// exact in f64, so the quantized ops can run through dgemm. `row_axis` places a 1-D
/// zero point along the matrix rows (A's per-row zero points) instead of the last axis.
fn dequant_int(t: &Tensor, zp: Option<&Tensor>, row_axis: bool) -> Result<ArrayD<f64>> {
    if !matches!(t.dtype(), DType::U8 | DType::I8) {
        return Err(Error::Unsupported(format!(
            "quantized product on {} tensors",
            t.dtype()
        )));
    }
    let v = t.cast(DType::F64)?.into_arc::<f64>()?;
    let Some(zp) = zp else {
        return Ok(v.into_owned());
    };
    if zp.dtype() != t.dtype() {
        return Err(invalid!(
            "zero point of type {} for a {} tensor",
            zp.dtype(),
            t.dtype()
        ));
    }
    let z = zp.cast(DType::F64)?.into_arc::<f64>()?;
    let z = if row_axis && z.ndim() == 1 && z.len() > 1 {
        z.insert_axis(Axis(1))
    } else {
        z
    };
    binary(v.view(), z.view(), |&a, &b| a - b)
}

fn matmul_integer(x: &Inputs) -> Result<Tensor> {
    let a = dequant_int(x.get(0)?, x.opt(2), true)?;
    let b = dequant_int(x.get(1)?, x.opt(3), false)?;
    let y = matmul_real(a.view(), b.view())?;
    Ok(y.mapv(|v| v as i32).into())
}

/// A scale as f32, 1-D per-row ones turned into a column.
fn scale(t: &Tensor, row_axis: bool) -> Result<ArrayD<f32>> {
    if !t.dtype().is_float() {
        return Err(invalid!("scale must be a float tensor, got {}", t.dtype()));
    }
    let s = via_f32(t)?;
    Ok(if row_axis && s.ndim() == 1 && s.len() > 1 {
        s.insert_axis(Axis(1))
    } else {
        s
    })
}

/// Rounds half to even, adds the zero point and saturates to the output type.
fn requantize(
    acc: ArrayViewD<f64>,
    factor: ArrayViewD<f32>,
    zp: Option<&Tensor>,
    out: DType,
) -> Result<Tensor> {
    let z = match zp {
        Some(z) => z.cast(DType::F64)?.into_arc::<f64>()?.into_owned(),
        None => ArrayD::zeros(IxDyn(&[])),
    };
    let (lo, hi) = match out {
        DType::U8 => (0.0, 255.0),
        DType::I8 => (-128.0, 127.0),
        other => {
            return Err(Error::Unsupported(format!(
                "quantized output of type {other}"
            )))
        }
    };
    let scaled = binary(acc, factor, |&a, &f| a * f as f64)?;
    let q = binary(scaled.view(), z.view(), |&v, &z| {
        (v.round_ties_even() + z).clamp(lo, hi)
    })?;
    Tensor::from(q).cast(out)
}

fn qlinear_matmul(x: &Inputs) -> Result<Tensor> {
    let a = dequant_int(x.get(0)?, x.opt(2), true)?;
    let b = dequant_int(x.get(3)?, x.opt(5), false)?;
    let acc = matmul_real(a.view(), b.view())?;
    let sa = scale(x.get(1)?, true)?;
    let sb = scale(x.get(4)?, false)?;
    let sy = scale(x.get(6)?, false)?;
    let sab = binary(sa.view(), sb.view(), |&a, &b| a * b)?;
    let factor = binary(sab.view(), sy.view(), |&a, &y| a / y)?;
    let out = x.opt(7).map_or(x.get(0)?.dtype(), Tensor::dtype);
    requantize(acc.view().into_dyn(), factor.view(), x.opt(7), out)
}

/// Determinant by LU decomposition with partial pivoting, in f64.
fn det_of(m: &mut [f64], n: usize) -> f64 {
    let mut det = 1.0;
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| m[i * n + col].abs().total_cmp(&m[j * n + col].abs()))
            .unwrap_or(col);
        if m[pivot * n + col] == 0.0 {
            return 0.0;
        }
        if pivot != col {
            for j in 0..n {
                m.swap(pivot * n + j, col * n + j);
            }
            det = -det;
        }
        let p = m[col * n + col];
        det *= p;
        for i in col + 1..n {
            let f = m[i * n + col] / p;
            if f != 0.0 {
                for j in col + 1..n {
                    m[i * n + j] -= f * m[col * n + j];
                }
            }
        }
    }
    det
}

fn det(t: &Tensor) -> Result<Tensor> {
    let shape = t.shape();
    let r = shape.len();
    if r < 2 || shape[r - 1] != shape[r - 2] {
        return Err(invalid!("Det needs square matrices, got shape {shape:?}"));
    }
    if !t.dtype().is_float() {
        return Err(Error::Unsupported(format!("Det on {} tensors", t.dtype())));
    }
    let n = shape[r - 1];
    let a = t.cast(DType::F64)?.into_arc::<f64>()?;
    let a = a.as_standard_layout();
    let data = a.as_slice().expect("standard layout");
    let dets: Vec<f64> = if n == 0 {
        vec![1.0; shape[..r - 2].iter().product()]
    } else {
        data.chunks_exact(n * n)
            .map(|c| det_of(&mut c.to_vec(), n))
            .collect()
    };
    Tensor::from_vec(&shape[..r - 2], dets)?.cast(t.dtype())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn det_of_permutation_and_singular() {
        let t =
            Tensor::from_vec(&[2, 2, 2], vec![0.0f32, 1.0, 1.0, 0.0, 1.0, 2.0, 2.0, 4.0]).unwrap();
        let d = det(&t).unwrap();
        assert_eq!(d.to_f64_vec().unwrap(), vec![-1.0, 0.0]);
        assert!(det(&Tensor::from_vec(&[2, 3], vec![0.0f32; 6]).unwrap()).is_err());
    }

    #[test]
    fn gemm_rejects_mismatched_shapes() {
        let a = Tensor::from_vec(&[2, 3], vec![1.0f32; 6]).unwrap();
        let b = Tensor::from_vec(&[2, 3], vec![1.0f32; 6]).unwrap();
        let args = [Some(&a), Some(&b)];
        assert!(gemm_op(&Inputs(&args), 1.0, 1.0, false, false).is_err());
        let y = gemm_op(&Inputs(&args), 2.0, 1.0, false, true).unwrap();
        assert_eq!(y.to_f64_vec().unwrap(), vec![6.0; 4]);
    }
}
