//! BitCast and linear (de)quantization: per tensor, per axis and blocked.

use crossover_core::TensorData;
use crossover_core::{invalid, DType, Error, Result, Tensor};
use half::{bf16, f16};
use ndarray::{ArrayD, ArrayViewD, IxDyn, Zip};

use super::super::broadcast::{view_as, PARALLEL_MIN};
use super::super::util::norm_axis;
use super::super::Inputs;
use super::num::Num;

/// Raw bits of every element, zero-extended.
fn raw_bits(t: &Tensor) -> Result<ArrayD<u64>> {
    Ok(match &**t {
        TensorData::F32(a) => a.map(|v| v.to_bits() as u64),
        TensorData::F64(a) => a.map(|v| v.to_bits()),
        TensorData::F16(a) => a.map(|v| v.to_bits() as u64),
        TensorData::BF16(a) => a.map(|v| v.to_bits() as u64),
        TensorData::I8(a) => a.map(|&v| v as u8 as u64),
        TensorData::I16(a) => a.map(|&v| v as u16 as u64),
        TensorData::I32(a) => a.map(|&v| v as u32 as u64),
        TensorData::I64(a) => a.map(|&v| v as u64),
        TensorData::U8(a) => a.map(|&v| v as u64),
        TensorData::U16(a) => a.map(|&v| v as u64),
        TensorData::U32(a) => a.map(|&v| v as u64),
        TensorData::U64(a) => a.map(|&v| v),
        TensorData::Bool(a) => a.map(|&v| v as u64),
        TensorData::String(_) => return Err(Error::Unsupported("BitCast of strings".into())),
    })
}

/// Reinterprets the bits of each element as another type of the same width.
pub fn bitcast(t: &Tensor, to: DType) -> Result<Tensor> {
    if to == DType::String || t.dtype() == DType::String {
        return Err(Error::Unsupported("BitCast of strings".into()));
    }
    if to.size() != t.dtype().size() {
        return Err(invalid!(
            "BitCast needs types of one width, got {} and {to}",
            t.dtype()
        ));
    }
    let b = raw_bits(t)?;
    Ok(match to {
        DType::F32 => Tensor::from(b.mapv(|v| f32::from_bits(v as u32))),
        DType::F64 => Tensor::from(b.mapv(f64::from_bits)),
        DType::F16 => Tensor::from(b.mapv(|v| f16::from_bits(v as u16))),
        DType::BF16 => Tensor::from(b.mapv(|v| bf16::from_bits(v as u16))),
        DType::I8 => Tensor::from(b.mapv(|v| v as u8 as i8)),
        DType::I16 => Tensor::from(b.mapv(|v| v as u16 as i16)),
        DType::I32 => Tensor::from(b.mapv(|v| v as u32 as i32)),
        DType::I64 => Tensor::from(b.mapv(|v| v as i64)),
        DType::U8 => Tensor::from(b.mapv(|v| v as u8)),
        DType::U16 => Tensor::from(b.mapv(|v| v as u16)),
        DType::U32 => Tensor::from(b.mapv(|v| v as u32)),
        DType::U64 => Tensor::from(b),
        DType::Bool => Tensor::from(b.mapv(|v| v != 0)),
        DType::String => unreachable!("refused above"),
    })
}

/// Lays a scale or zero point out so that it broadcasts against `shape`: a scalar as is,
/// a vector along `axis`, a blocked tensor repeated `block` times along `axis`.
fn spread<T: Clone>(p: ArrayViewD<T>, shape: &[usize], axis: i64, block: i64) -> Result<ArrayD<T>> {
    if p.len() == 1 {
        return p
            .to_owned()
            .into_shape_with_order(IxDyn(&[]))
            .map_err(|e| invalid!("{e}"));
    }
    if shape.is_empty() {
        return Err(invalid!(
            "a scalar takes a one-element scale, got shape {:?}",
            p.shape()
        ));
    }
    let ax = norm_axis(axis, shape.len())?;
    if block <= 0 {
        if p.ndim() != 1 || p.len() != shape[ax] {
            return Err(invalid!(
                "per-axis scale of shape {:?} does not match axis {axis} of {shape:?}",
                p.shape()
            ));
        }
        let mut dims = vec![1; shape.len()];
        dims[ax] = p.len();
        return p
            .to_owned()
            .into_shape_with_order(IxDyn(&dims))
            .map_err(|e| invalid!("{e}"));
    }
    let bs = block as usize;
    let ok = p.ndim() == shape.len()
        && (0..shape.len()).all(|i| {
            if i == ax {
                p.shape()[i] == shape[i].div_ceil(bs)
            } else {
                p.shape()[i] == shape[i]
            }
        });
    if !ok {
        return Err(invalid!(
            "blocked scale of shape {:?} does not fit {shape:?} with block {bs} on axis {axis}",
            p.shape()
        ));
    }
    Ok(ArrayD::from_shape_fn(IxDyn(shape), |idx| {
        let mut i = idx;
        i[ax] /= bs;
        p[i].clone()
    }))
}

fn range(dt: DType) -> Option<(f64, f64)> {
    Some(match dt {
        DType::U8 => (0.0, 255.0),
        DType::I8 => (-128.0, 127.0),
        DType::U16 => (0.0, 65535.0),
        DType::I16 => (-32768.0, 32767.0),
        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
        DType::U32 => (0.0, u32::MAX as f64),
        _ => return None,
    })
}

#[inline]
fn rint(v: f64) -> f64 {
    let r = v.round();
    if (v - v.trunc()).abs() == 0.5 {
        2.0 * (v / 2.0).round()
    } else {
        r
    }
}

fn zip3<F: Copy + Send + Sync, O: Send>(
    x: &ArrayViewD<F>,
    s: &ArrayViewD<F>,
    z: &ArrayViewD<f64>,
    f: impl Fn(F, F, f64) -> O + Sync + Send,
) -> Result<ArrayD<O>> {
    let shape = x.shape();
    let (sv, zv) = (view_as(s, shape)?, view_as(z, shape)?);
    let zip = Zip::from(x).and(&sv).and(&zv);
    Ok(if x.len() >= PARALLEL_MIN {
        zip.par_map_collect(|&a, &b, &c| f(a, b, c))
    } else {
        zip.map_collect(|&a, &b, &c| f(a, b, c))
    })
}

fn to_q<Q: Num>(
    x: &ArrayViewD<f32>,
    s: &ArrayViewD<f32>,
    z: &ArrayViewD<f64>,
    lo: f64,
    hi: f64,
) -> Result<Tensor> {
    Ok(Tensor::from(zip3(x, s, z, |v, sc, zp| {
        Q::from_f64((rint((v / sc) as f64) + zp).clamp(lo, hi))
    })?))
}

pub fn quantize(x: &Inputs, axis: i64, block: i64, output_dtype: Option<DType>) -> Result<Tensor> {
    let data = x.get(0)?;
    let scale = x.get(1)?;
    let zp = x.opt(2);
    let target = zp.map(|z| z.dtype()).or(output_dtype).unwrap_or(DType::U8);
    if let (Some(z), Some(o)) = (zp, output_dtype) {
        if z.dtype() != o {
            return Err(invalid!(
                "QuantizeLinear output_dtype {o} differs from the zero point's {}",
                z.dtype()
            ));
        }
    }
    let (lo, hi) =
        range(target).ok_or_else(|| Error::Unsupported(format!("QuantizeLinear to {target}")))?;
    if !data.dtype().is_float() && data.dtype() != DType::I32 {
        return Err(Error::Unsupported(format!(
            "QuantizeLinear of {} tensors",
            data.dtype()
        )));
    }
    let xf = data.cast(DType::F32)?;
    let sf = scale.cast(DType::F32)?;
    let shape = data.shape().to_vec();
    let s = spread(sf.view::<f32>()?, &shape, axis, block)?;
    let z = match zp {
        Some(z) => spread(z.cast(DType::F64)?.view::<f64>()?, &shape, axis, block)?,
        None => ArrayD::zeros(IxDyn(&[])),
    };
    let (xv, sv, zv) = (xf.view::<f32>()?, s.view(), z.view());
    match target {
        DType::U8 => to_q::<u8>(&xv, &sv, &zv, lo, hi),
        DType::I8 => to_q::<i8>(&xv, &sv, &zv, lo, hi),
        DType::U16 => to_q::<u16>(&xv, &sv, &zv, lo, hi),
        DType::I16 => to_q::<i16>(&xv, &sv, &zv, lo, hi),
        DType::I32 => to_q::<i32>(&xv, &sv, &zv, lo, hi),
        DType::U32 => to_q::<u32>(&xv, &sv, &zv, lo, hi),
        other => Err(Error::Unsupported(format!("QuantizeLinear to {other}"))),
    }
}

pub fn dequantize(
    x: &Inputs,
    axis: i64,
    block: i64,
    output_dtype: Option<DType>,
) -> Result<Tensor> {
    let data = x.get(0)?;
    let scale = x.get(1)?;
    if !data.dtype().is_int() {
        return Err(Error::Unsupported(format!(
            "DequantizeLinear of {} tensors",
            data.dtype()
        )));
    }
    if let Some(z) = x.opt(2) {
        if z.dtype() != data.dtype() {
            return Err(invalid!(
                "DequantizeLinear zero point is {}, data is {}",
                z.dtype(),
                data.dtype()
            ));
        }
    }
    let out_dt = output_dtype.unwrap_or(scale.dtype());
    if !out_dt.is_float() {
        return Err(invalid!(
            "DequantizeLinear scale must be a float, got {out_dt}"
        ));
    }
    let shape = data.shape().to_vec();
    let xf = data.cast(DType::F32)?;
    let s = spread(scale.cast(DType::F32)?.view::<f32>()?, &shape, axis, block)?;
    let z = match x.opt(2) {
        Some(z) => spread(z.cast(DType::F64)?.view::<f64>()?, &shape, axis, block)?,
        None => ArrayD::zeros(IxDyn(&[])),
    };
    let y = zip3(&xf.view::<f32>()?, &s.view(), &z.view(), |v, sc, zp| {
        (v - zp as f32) * sc
    })?;
    Tensor::from(y).cast(out_dt)
}

/// u8 quantization with scale and zero point chosen from the data's range (which always
/// includes 0).
pub fn dynamic_quantize(t: &Tensor) -> Result<Vec<Tensor>> {
    let a = t.view::<f32>()?;
    let (mn, mx) = a
        .iter()
        .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let scale = if mx == mn { 1.0 } else { mx - mn } / 255.0;
    let zp = rint((0.0 - mn / scale).clamp(0.0, 255.0) as f64);
    let y = super::super::broadcast::unary(a, |&v| {
        (rint((v / scale) as f64) + zp).clamp(0.0, 255.0) as u8
    });
    Ok(vec![
        Tensor::from(y),
        Tensor::scalar(scale),
        Tensor::scalar(zp as u8),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitcast_checks_width() {
        let t = Tensor::from_vec(&[1], vec![1f32]).unwrap();
        let i = bitcast(&t, DType::I32).unwrap();
        assert_eq!(i.to_i64_vec().unwrap(), vec![0x3f80_0000]);
        assert!(bitcast(&t, DType::I64).is_err());
    }

    #[test]
    fn quantize_per_axis_and_bad_scale() {
        let x = Tensor::from_vec(&[1, 2, 2], vec![1f32, 2.5, 3., 4.]).unwrap();
        let s = Tensor::from_vec(&[2], vec![1f32, 2.]).unwrap();
        let z = Tensor::from_vec(&[2], vec![0i8, 1]).unwrap();
        let v = [Some(&x), Some(&s), Some(&z)];
        let q = quantize(&Inputs(&v), 1, 0, None).unwrap();
        assert_eq!(q.to_i64_vec().unwrap(), vec![1, 2, 3, 3]);
        let bad = Tensor::from_vec(&[3], vec![1f32, 2., 3.]).unwrap();
        let v = [Some(&x), Some(&bad), None];
        assert!(quantize(&Inputs(&v), 1, 0, None).is_err());
    }
}
