//! CausalConvWithState: a depthwise causal 1-D convolution over `past_state ++ input`
//! that hands back the last `k - 1` positions of that sequence for the next call.

use crossover_core::tensor::checked_numel;
use crossover_core::{invalid, DType, Error, Result, Tensor};
use half::{bf16, f16};
use ndarray::{ArrayD, ArrayViewD, IxDyn};
use num_traits::Float;
use rayon::prelude::*;

use super::super::broadcast::PARALLEL_MIN;
use super::super::Inputs;

pub(super) fn eval(x: &Inputs, silu: bool) -> Result<Vec<Tensor>> {
    let (xt, wt, bt, pt) = (x.get(0)?, x.get(1)?, x.opt(2), x.opt(3));
    let dt = xt.dtype();
    if let Some(t) = [Some(wt), bt, pt]
        .into_iter()
        .flatten()
        .find(|t| t.dtype() != dt)
    {
        return Err(invalid!(
            "CausalConvWithState needs inputs of one type, got {dt} and {}",
            t.dtype()
        ));
    }
    macro_rules! native {
        ($t:ty) => {{
            let (y, s) = causal::<$t>(
                xt.view()?,
                wt.view()?,
                bt.map(|b| b.view()).transpose()?,
                pt.map(|p| p.view()).transpose()?,
                silu,
                |v| v,
            )?;
            Ok(vec![y.into(), s.into()])
        }};
    }
    // Half types run in f32; like the reference, the convolution's result is rounded
    // to the input type before the activation.
    macro_rules! widened {
        ($h:ty) => {{
            let wide = |t: &Tensor| t.cast(DType::F32);
            let (xs, ws) = (wide(xt)?, wide(wt)?);
            let bs = bt.map(wide).transpose()?;
            let ps = pt.map(wide).transpose()?;
            let (y, s) = causal::<f32>(
                xs.view()?,
                ws.view()?,
                bs.as_ref().map(|b| b.view()).transpose()?,
                ps.as_ref().map(|p| p.view()).transpose()?,
                silu,
                |v| <$h>::from_f32(v).to_f32(),
            )?;
            Ok(vec![Tensor::from(y).cast(dt)?, Tensor::from(s).cast(dt)?])
        }};
    }
    match dt {
        DType::F32 => native!(f32),
        DType::F64 => native!(f64),
        DType::F16 => widened!(f16),
        DType::BF16 => widened!(bf16),
        other => Err(Error::Unsupported(format!(
            "CausalConvWithState on {other} tensors"
        ))),
    }
}

/// Output `(batch, channels, length)` and present state `(batch, channels, k - 1)`.
fn causal<T: Float + Send + Sync>(
    x: ArrayViewD<T>,
    w: ArrayViewD<T>,
    b: Option<ArrayViewD<T>>,
    past: Option<ArrayViewD<T>>,
    silu: bool,
    round: impl Fn(T) -> T + Sync,
) -> Result<(ArrayD<T>, ArrayD<T>)> {
    let &[n, c, l] = x.shape() else {
        return Err(invalid!(
            "CausalConvWithState input must be (batch, channels, length), got {:?}",
            x.shape()
        ));
    };
    let k = match *w.shape() {
        [wc, 1, k] if wc == c && k > 0 => k,
        _ => {
            return Err(invalid!(
                "CausalConvWithState weight must be ({c}, 1, k) with k > 0, got {:?}",
                w.shape()
            ))
        }
    };
    if let Some(b) = &b {
        if b.shape() != [c] {
            return Err(invalid!(
                "CausalConvWithState bias must be ({c}), got {:?}",
                b.shape()
            ));
        }
    }
    let s = k - 1;
    if let Some(p) = &past {
        if p.shape() != [n, c, s] {
            return Err(invalid!(
                "CausalConvWithState past_state must be ({n}, {c}, {s}), got {:?}",
                p.shape()
            ));
        }
    }
    checked_numel(&[n, c, l + s], DType::F32)?;
    let x = x.as_standard_layout();
    let w = w.as_standard_layout();
    let past = past.map(|p| p.as_standard_layout().into_owned());
    let (xd, wd) = (
        x.as_slice().expect("standard layout"),
        w.as_slice().expect("standard layout"),
    );
    let pd = past
        .as_ref()
        .map(|p| p.as_slice().expect("standard layout"));
    let bias = |ch: usize| b.as_ref().map_or(T::zero(), |b| b[[ch]]);

    // The sequence a row convolves: its past state, then its input.
    let fill = |r: usize, buf: &mut Vec<T>| {
        buf.clear();
        match pd {
            Some(p) => buf.extend_from_slice(&p[r * s..(r + 1) * s]),
            None => buf.resize(s, T::zero()),
        }
        buf.extend_from_slice(&xd[r * l..(r + 1) * l]);
    };

    let mut y = ArrayD::<T>::zeros(IxDyn(&[n, c, l]));
    let row = |buf: &mut Vec<T>, (r, out): (usize, &mut [T])| {
        fill(r, buf);
        let ch = r % c;
        let taps = &wd[ch * k..(ch + 1) * k];
        let b0 = bias(ch);
        for (o, win) in out.iter_mut().zip(buf.windows(k)) {
            let v = round(win.iter().zip(taps).fold(b0, |acc, (&a, &t)| acc + a * t));
            *o = if silu { v / (T::one() + (-v).exp()) } else { v };
        }
    };
    if l > 0 {
        let yd = y.as_slice_mut().expect("fresh array");
        if n * c * l * k >= PARALLEL_MIN {
            yd.par_chunks_mut(l)
                .enumerate()
                .for_each_init(|| Vec::with_capacity(l + s), row);
        } else {
            let mut buf = Vec::with_capacity(l + s);
            yd.chunks_mut(l).enumerate().for_each(|t| row(&mut buf, t));
        }
    }

    let mut present = ArrayD::<T>::zeros(IxDyn(&[n, c, s]));
    if s > 0 {
        let mut buf = Vec::with_capacity(l + s);
        let pd = present.as_slice_mut().expect("fresh array");
        for (r, out) in pd.chunks_mut(s).enumerate() {
            fill(r, &mut buf);
            out.copy_from_slice(&buf[l..]);
        }
    }
    Ok((y, present))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr(shape: &[usize], v: Vec<f64>) -> ArrayD<f64> {
        ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()
    }

    #[test]
    fn convolves_past_state_then_input() {
        let x = arr(&[1, 1, 3], vec![1.0, 2.0, 3.0]);
        let w = arr(&[1, 1, 3], vec![1.0, 10.0, 100.0]);
        let b = arr(&[1], vec![0.5]);
        let p = arr(&[1, 1, 2], vec![4.0, 5.0]);
        let (y, s) = causal(
            x.view(),
            w.view(),
            Some(b.view()),
            Some(p.view()),
            false,
            |v| v,
        )
        .unwrap();
        // Sequence 4 5 1 2 3.
        assert_eq!(y.as_slice().unwrap(), [154.5, 215.5, 321.5]);
        assert_eq!(s.as_slice().unwrap(), [2.0, 3.0]);
        // Without a past state, zeros; an input shorter than the state keeps some.
        let x1 = arr(&[1, 1, 1], vec![7.0]);
        let (y, s) = causal(x1.view(), w.view(), None, None, false, |v| v).unwrap();
        assert_eq!(y.as_slice().unwrap(), [700.0]);
        assert_eq!(s.as_slice().unwrap(), [0.0, 7.0]);
    }

    #[test]
    fn rejects_bad_shapes() {
        let x = arr(&[1, 2, 3], vec![0.0; 6]);
        let w = arr(&[2, 1, 2], vec![0.0; 4]);
        let run = |x: &ArrayD<f64>, w: &ArrayD<f64>, p: Option<&ArrayD<f64>>| {
            causal(x.view(), w.view(), None, p.map(|p| p.view()), true, |v| v)
        };
        assert!(run(&x, &w, None).is_ok());
        assert!(run(&arr(&[2, 3], vec![0.0; 6]), &w, None).is_err());
        assert!(run(&x, &arr(&[1, 1, 2], vec![0.0; 2]), None).is_err());
        assert!(run(&x, &arr(&[2, 1, 0], vec![]), None).is_err());
        assert!(run(&x, &w, Some(&arr(&[1, 2, 2], vec![0.0; 4]))).is_err());
    }
}
