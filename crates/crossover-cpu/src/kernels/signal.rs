//! Signal kernels: DFT, STFT, window functions and MelWeightMatrix. Transforms run in
//! f64 and are cast back to the input type.

use std::f64::consts::PI;

use crossover_core::op::SignalOp;
use crossover_core::tensor::checked_numel;
use crossover_core::{invalid, DType, Error, Result, Tensor};
use rayon::prelude::*;

use super::util::norm_axis;
use super::Inputs;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct C {
    re: f64,
    im: f64,
}

impl C {
    fn mul(self, o: C) -> C {
        C {
            re: self.re * o.re - self.im * o.im,
            im: self.re * o.im + self.im * o.re,
        }
    }
    fn add(self, o: C) -> C {
        C {
            re: self.re + o.re,
            im: self.im + o.im,
        }
    }
    fn sub(self, o: C) -> C {
        C {
            re: self.re - o.re,
            im: self.im - o.im,
        }
    }
}

/// A DFT of one length: radix-2 in place for powers of two, the direct sum otherwise.
struct Plan {
    n: usize,
    inverse: bool,
    /// `exp(∓2πik/n)` for k in 0..n.
    twiddle: Vec<C>,
}

impl Plan {
    fn new(n: usize, inverse: bool) -> Plan {
        let sign = if inverse { 1.0 } else { -1.0 };
        let twiddle = (0..n)
            .map(|k| {
                let t = sign * 2.0 * PI * k as f64 / n as f64;
                C {
                    re: t.cos(),
                    im: t.sin(),
                }
            })
            .collect();
        Plan {
            n,
            inverse,
            twiddle,
        }
    }

    /// Transforms `x` (length `n`) in place; `tmp` is scratch. Inverse transforms are
    /// scaled by 1/n.
    fn run(&self, x: &mut [C], tmp: &mut Vec<C>) {
        let n = self.n;
        if n == 0 {
            return;
        }
        if n.is_power_of_two() {
            let bits = n.trailing_zeros();
            for i in 0..n {
                let j = i.reverse_bits() >> (usize::BITS - bits).min(usize::BITS - 1);
                let j = if bits == 0 { 0 } else { j };
                if i < j {
                    x.swap(i, j);
                }
            }
            let mut len = 2;
            while len <= n {
                let stride = n / len;
                for start in (0..n).step_by(len) {
                    for k in 0..len / 2 {
                        let w = self.twiddle[k * stride];
                        let u = x[start + k];
                        let v = x[start + k + len / 2].mul(w);
                        x[start + k] = u.add(v);
                        x[start + k + len / 2] = u.sub(v);
                    }
                }
                len <<= 1;
            }
        } else {
            tmp.clear();
            tmp.extend((0..n).map(|k| {
                x.iter().enumerate().fold(C::default(), |acc, (j, &v)| {
                    acc.add(v.mul(self.twiddle[(j * k) % n]))
                })
            }));
            x.copy_from_slice(tmp);
        }
        if self.inverse {
            let s = 1.0 / n as f64;
            for v in x.iter_mut() {
                v.re *= s;
                v.im *= s;
            }
        }
    }
}

fn f64_data(t: &Tensor) -> Result<Vec<f64>> {
    if !t.dtype().is_float() {
        return Err(Error::Unsupported(format!(
            "signal ops on {} tensors",
            t.dtype()
        )));
    }
    t.to_f64_vec()
}

fn scalar_i64(t: &Tensor, what: &str) -> Result<i64> {
    match t.to_i64_vec()?[..] {
        [v] => Ok(v),
        _ => Err(invalid!(
            "{what} must be a single integer, got shape {:?}",
            t.shape()
        )),
    }
}

fn dft(
    x: &Tensor,
    length: Option<&Tensor>,
    axis: i64,
    inverse: bool,
    onesided: bool,
) -> Result<Tensor> {
    let shape = x.shape().to_vec();
    let rank = shape.len();
    if rank < 2 || !matches!(shape[rank - 1], 1 | 2) {
        return Err(invalid!(
            "DFT input must end in a dimension of 1 or 2, got {shape:?}"
        ));
    }
    let axis = norm_axis(axis, rank)?;
    if axis == rank - 1 {
        return Err(invalid!("DFT axis cannot be the last (complex) dimension"));
    }
    let complex = shape[rank - 1] == 2;
    let n_in = shape[axis];
    let n = match length {
        Some(t) => {
            let v = scalar_i64(t, "dft_length")?;
            usize::try_from(v).map_err(|_| invalid!("dft_length {v} is negative"))?
        }
        None if inverse && onesided => 2 * n_in.saturating_sub(1),
        None => n_in,
    };
    let inner: usize = shape[axis + 1..rank - 1].iter().product();
    let real_out = inverse && onesided;
    let bins = if onesided && !inverse { n / 2 + 1 } else { n };
    let mut out_shape = shape.clone();
    out_shape[axis] = bins;
    out_shape[rank - 1] = if real_out { 1 } else { 2 };
    let total = checked_numel(&out_shape, x.dtype())?;
    let data = f64_data(x)?;
    let at = |o: usize, j: usize, i: usize| {
        let base = ((o * n_in + j) * inner + i) * shape[rank - 1];
        C {
            re: data[base],
            im: if complex { data[base + 1] } else { 0.0 },
        }
    };
    let plan = Plan::new(n, inverse);
    let comps = out_shape[rank - 1];
    let mut out = vec![0f64; total];
    let row = bins * inner * comps;
    let work = |o: usize, ys: &mut [f64], buf: &mut Vec<C>, tmp: &mut Vec<C>| {
        for i in 0..inner {
            buf.clear();
            if real_out {
                // Rebuild the Hermitian spectrum from its first half.
                buf.extend((0..n).map(|k| {
                    let (src, conj) = if k <= n / 2 {
                        (k, false)
                    } else {
                        (n - k, true)
                    };
                    let mut v = if src < n_in {
                        at(o, src, i)
                    } else {
                        C::default()
                    };
                    if k == 0 || (n % 2 == 0 && k == n / 2) {
                        v.im = 0.0;
                    }
                    if conj {
                        v.im = -v.im;
                    }
                    v
                }));
            } else {
                buf.extend((0..n).map(|j| if j < n_in { at(o, j, i) } else { C::default() }));
            }
            plan.run(buf, tmp);
            for (k, v) in buf.iter().take(bins).enumerate() {
                let p = (k * inner + i) * comps;
                ys[p] = v.re;
                if !real_out {
                    ys[p + 1] = v.im;
                }
            }
        }
    };
    if row > 0 {
        out.par_chunks_mut(row).enumerate().for_each_init(
            || (Vec::new(), Vec::new()),
            |(buf, tmp), (o, ys)| work(o, ys, buf, tmp),
        );
    }
    Tensor::from_vec(&out_shape, out)?.cast(x.dtype())
}

fn stft(
    x: &Tensor,
    step: &Tensor,
    window: Option<&Tensor>,
    frame_length: Option<&Tensor>,
    onesided: bool,
) -> Result<Tensor> {
    let &[batch, len, comps] = x.shape() else {
        return Err(invalid!(
            "STFT signal must be [batch, length, 1 or 2], got {:?}",
            x.shape()
        ));
    };
    if !matches!(comps, 1 | 2) {
        return Err(invalid!("STFT signal must end in 1 or 2, got {comps}"));
    }
    let step = scalar_i64(step, "frame_step")?;
    if step <= 0 {
        return Err(invalid!("frame_step must be positive, got {step}"));
    }
    let window = window.map(f64_data).transpose()?;
    let fl = match (frame_length, &window) {
        (Some(t), _) => {
            let v = scalar_i64(t, "frame_length")?;
            usize::try_from(v).map_err(|_| invalid!("frame_length {v} is negative"))?
        }
        (None, Some(w)) => w.len(),
        (None, None) => len,
    };
    if let Some(w) = &window {
        if w.len() != fl {
            return Err(invalid!(
                "window of {} does not match frame_length {fl}",
                w.len()
            ));
        }
    }
    if fl == 0 || fl > len {
        return Err(invalid!("frame_length {fl} does not fit a signal of {len}"));
    }
    let frames = 1 + (len - fl) / step as usize;
    let bins = if onesided { fl / 2 + 1 } else { fl };
    let out_shape = [batch, frames, bins, 2];
    checked_numel(&out_shape, x.dtype())?;
    let data = f64_data(x)?;
    let plan = Plan::new(fl, false);
    let mut out = vec![0f64; batch * frames * bins * 2];
    let (mut buf, mut tmp) = (Vec::with_capacity(fl), Vec::new());
    for (bf, ys) in out.chunks_mut(bins * 2).enumerate() {
        let (b, f) = (bf / frames, bf % frames);
        buf.clear();
        buf.extend((0..fl).map(|t| {
            let p = (b * len + f * step as usize + t) * comps;
            let w = window.as_ref().map_or(1.0, |w| w[t]);
            C {
                re: data[p] * w,
                im: if comps == 2 { data[p + 1] * w } else { 0.0 },
            }
        }));
        plan.run(&mut buf, &mut tmp);
        for (k, v) in buf.iter().take(bins).enumerate() {
            ys[2 * k] = v.re;
            ys[2 * k + 1] = v.im;
        }
    }
    Tensor::from_vec(&out_shape, out)?.cast(x.dtype())
}

fn window(size: &Tensor, periodic: bool, dtype: DType, f: impl Fn(f64) -> f64) -> Result<Tensor> {
    let n = scalar_i64(size, "size")?;
    let n = usize::try_from(n).map_err(|_| invalid!("window size {n} is negative"))?;
    checked_numel(&[n], dtype)?;
    let denom = if periodic { n as f64 } else { n as f64 - 1.0 };
    let v: Vec<f64> = (0..n).map(|k| f(2.0 * PI * k as f64 / denom)).collect();
    Tensor::from_vec(&[n], v)?.cast(dtype)
}

fn mel_weight_matrix(x: &Inputs, dtype: DType) -> Result<Tensor> {
    let bins = scalar_i64(x.get(0)?, "num_mel_bins")?;
    let dft_length = scalar_i64(x.get(1)?, "dft_length")?;
    let rate = x.get(2)?.scalar_f64()?;
    let lower = x.get(3)?.scalar_f64()?;
    let upper = x.get(4)?.scalar_f64()?;
    if bins <= 0 || dft_length <= 0 || rate <= 0.0 {
        return Err(invalid!(
            "MelWeightMatrix needs positive num_mel_bins, dft_length and sample_rate"
        ));
    }
    let (bins, dft_length) = (bins as usize, dft_length as usize);
    let spec = dft_length / 2 + 1;
    checked_numel(&[spec, bins], dtype)?;
    let to_mel = |hz: f64| 2595.0 * (hz / 700.0).ln_1p() / std::f64::consts::LN_10;
    let (lo, hi) = (to_mel(lower), to_mel(upper));
    let step = (hi - lo) / (bins + 2) as f64;
    let edges: Vec<i64> = (0..bins + 2)
        .map(|i| {
            let hz = 700.0 * ((i as f64 * step + lo) / 2595.0 * std::f64::consts::LN_10).exp_m1();
            (((dft_length + 1) as f64 * hz) / rate).floor() as i64
        })
        .collect();
    let mut out = vec![0f64; spec * bins];
    let mut set = |j: i64, i: usize, v: f64| -> Result<()> {
        let j = usize::try_from(j)
            .ok()
            .filter(|&j| j < spec)
            .ok_or_else(|| invalid!("mel band edge {j} falls outside {spec} spectrogram bins"))?;
        out[j * bins + i] = v;
        Ok(())
    };
    for i in 0..bins {
        let (l, c, h) = (edges[i], edges[i + 1], edges[i + 2]);
        if c == l {
            set(c, i, 1.0)?;
        } else {
            for j in l..=c {
                set(j, i, (j - l) as f64 / (c - l) as f64)?;
            }
        }
        if h > c {
            for j in c..h {
                set(j, i, (h - j) as f64 / (h - c) as f64)?;
            }
        }
    }
    Tensor::from_vec(&[spec, bins], out)?.cast(dtype)
}

pub fn eval(op: &SignalOp, x: &Inputs) -> Result<Vec<Tensor>> {
    let out = match op {
        SignalOp::DFT {
            axis,
            inverse,
            onesided,
        } => {
            let axis = match (axis, x.opt(2)) {
                (Some(a), _) => *a,
                (None, Some(t)) => scalar_i64(t, "axis")?,
                (None, None) => -2,
            };
            dft(x.get(0)?, x.opt(1), axis, *inverse, *onesided)?
        }
        SignalOp::STFT { onesided } => stft(x.get(0)?, x.get(1)?, x.opt(2), x.opt(3), *onesided)?,
        SignalOp::HannWindow {
            periodic,
            output_datatype,
        } => window(x.get(0)?, *periodic, *output_datatype, |t| {
            0.5 - 0.5 * t.cos()
        })?,
        SignalOp::HammingWindow {
            periodic,
            output_datatype,
        } => {
            let alpha = 25.0 / 46.0;
            window(x.get(0)?, *periodic, *output_datatype, |t| {
                alpha - (1.0 - alpha) * t.cos()
            })?
        }
        SignalOp::BlackmanWindow {
            periodic,
            output_datatype,
        } => window(x.get(0)?, *periodic, *output_datatype, |t| {
            0.42 - 0.5 * t.cos() + 0.08 * (2.0 * t).cos()
        })?,
        SignalOp::MelWeightMatrix { output_datatype } => mel_weight_matrix(x, *output_datatype)?,
    };
    Ok(vec![out])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[C]) -> Vec<C> {
        let n = x.len();
        (0..n)
            .map(|k| {
                x.iter().enumerate().fold(C::default(), |a, (j, v)| {
                    let t = -2.0 * PI * (j * k) as f64 / n as f64;
                    a.add(v.mul(C {
                        re: t.cos(),
                        im: t.sin(),
                    }))
                })
            })
            .collect()
    }

    #[test]
    fn fft_matches_direct_sum_and_inverts() {
        for n in [1usize, 2, 8, 6] {
            let x: Vec<C> = (0..n)
                .map(|i| C {
                    re: i as f64,
                    im: 1.0 - i as f64,
                })
                .collect();
            let mut y = x.clone();
            Plan::new(n, false).run(&mut y, &mut Vec::new());
            for (a, b) in y.iter().zip(naive(&x)) {
                assert!((a.re - b.re).abs() < 1e-9 && (a.im - b.im).abs() < 1e-9);
            }
            Plan::new(n, true).run(&mut y, &mut Vec::new());
            for (a, b) in y.iter().zip(&x) {
                assert!((a.re - b.re).abs() < 1e-9 && (a.im - b.im).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn dft_rejects_bad_shapes() {
        let t = Tensor::from_vec(&[4, 3], vec![0f32; 12]).unwrap();
        assert!(dft(&t, None, 0, false, false).is_err());
        let t = Tensor::from_vec(&[4, 1], vec![0f32; 4]).unwrap();
        assert!(dft(&t, None, 1, false, false).is_err());
        let s = Tensor::scalar(-3i64);
        assert!(window(&s, true, DType::F32, |t| t).is_err());
    }
}
