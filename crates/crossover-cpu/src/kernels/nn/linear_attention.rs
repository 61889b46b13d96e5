//! LinearAttention: a recurrent state `[d_k, d_v]` per KV head, updated token by token
//! (plain, gated by `exp(decay)`, delta-rule with `beta`, or both) and read by the queries.

use crossover_core::{invalid, Error, Result, Tensor};
use rayon::prelude::*;

use super::{arr, cf, flat, Real};
use crate::kernels::Inputs;

pub(crate) struct Params {
    pub q_heads: usize,
    pub kv_heads: usize,
    pub scale: Option<f32>,
    pub gated: bool,
    pub delta: bool,
}

pub(crate) fn eval<F: Real>(x: &Inputs, p: &Params) -> Result<Vec<Tensor>> {
    let (qt, kt, vt) = (x.get(0)?, x.get(1)?, x.get(2)?);
    for t in [qt, kt, vt] {
        if t.rank() != 3 {
            return Err(invalid!(
                "LinearAttention needs 3-D inputs, got {:?}",
                t.shape()
            ));
        }
    }
    let (b, t, qhid) = (qt.shape()[0], qt.shape()[1], qt.shape()[2]);
    let (hq, hkv) = (p.q_heads, p.kv_heads);
    let group = hq / hkv;
    if qhid % hq != 0 || vt.shape()[2] % hkv != 0 {
        return Err(invalid!(
            "LinearAttention: hidden sizes do not split into heads"
        ));
    }
    let (dk, dv) = (qhid / hq, vt.shape()[2] / hkv);
    if kt.shape() != [b, t, hkv * dk] || vt.shape()[..2] != [b, t] {
        return Err(Error::ShapeMismatch(format!(
            "LinearAttention: Q {:?}, K {:?}, V {:?} do not agree",
            qt.shape(),
            kt.shape(),
            vt.shape()
        )));
    }
    if p.gated != x.opt(4).is_some() || p.delta != x.opt(5).is_some() {
        return Err(invalid!(
            "LinearAttention: decay and beta must be given exactly when the update rule uses them"
        ));
    }
    let (qa, ka, va) = (arr::<F>(qt)?, arr::<F>(kt)?, arr::<F>(vt)?);
    let (q, k, v) = (flat(&qa), flat(&ka), flat(&va));
    // Decay per (b, t, head) or per (b, t, head, d_k).
    let decay = x.opt(4).map(arr::<F>).transpose()?;
    let decay_flat = decay.as_ref().map(flat);
    let decay_per_dim = match &decay {
        Some(d) if d.shape() == [b, t, hkv] => false,
        Some(d) if d.shape() == [b, t, hkv * dk] => true,
        Some(d) => {
            return Err(Error::ShapeMismatch(format!(
                "LinearAttention: decay {:?}",
                d.shape()
            )))
        }
        None => false,
    };
    let beta = x.opt(5).map(arr::<F>).transpose()?;
    let beta_flat = beta.as_ref().map(flat);
    let beta_heads = match &beta {
        Some(bt) if bt.shape() == [b, t, hkv] => hkv,
        Some(bt) if bt.shape() == [b, t, 1] => 1,
        Some(bt) => {
            return Err(Error::ShapeMismatch(format!(
                "LinearAttention: beta {:?}",
                bt.shape()
            )))
        }
        None => 1,
    };
    let state_dtype = x.opt(3).map_or(qt.dtype(), |s| s.dtype());
    let past = x.opt(3).map(arr::<F>).transpose()?;
    if let Some(s) = &past {
        if s.shape() != [b, hkv, dk, dv] {
            return Err(Error::ShapeMismatch(format!(
                "LinearAttention: past_state {:?}, expected [{b}, {hkv}, {dk}, {dv}]",
                s.shape()
            )));
        }
    }
    let past_flat = past.as_ref().map(flat);
    let scale = cf::<F>(p.scale.map_or(1.0 / (dk as f64).sqrt(), |s| s as f64));

    // One task per (batch, KV head): its final state and its query heads' outputs.
    let results: Vec<(Vec<F>, Vec<F>)> = (0..b * hkv)
        .into_par_iter()
        .map(|bh| {
            let (bi, h) = (bh / hkv, bh % hkv);
            let mut state = match &past_flat {
                Some(s) => s[bh * dk * dv..(bh + 1) * dk * dv].to_vec(),
                None => vec![F::zero(); dk * dv],
            };
            let mut y = vec![F::zero(); t * group * dv];
            let mut vt_ = vec![F::zero(); dv];
            for ti in 0..t {
                let row = bi * t + ti;
                if let Some(d) = &decay_flat {
                    for di in 0..dk {
                        let g = if decay_per_dim {
                            d[row * hkv * dk + h * dk + di]
                        } else {
                            d[row * hkv + h]
                        };
                        let e = g.exp();
                        state[di * dv..(di + 1) * dv]
                            .iter_mut()
                            .for_each(|s| *s = *s * e);
                    }
                }
                let kr = &k[(row * hkv + h) * dk..(row * hkv + h + 1) * dk];
                vt_.copy_from_slice(&v[(row * hkv + h) * dv..(row * hkv + h + 1) * dv]);
                if let Some(bt) = &beta_flat {
                    let be = bt[row * beta_heads + if beta_heads == 1 { 0 } else { h }];
                    for (m, vm) in vt_.iter_mut().enumerate() {
                        let r: F = (0..dk).map(|di| state[di * dv + m] * kr[di]).sum();
                        *vm = be * (*vm - r);
                    }
                }
                for di in 0..dk {
                    let kd = kr[di];
                    for (s, &vm) in state[di * dv..(di + 1) * dv].iter_mut().zip(&vt_) {
                        *s += kd * vm;
                    }
                }
                for gi in 0..group {
                    let qh = h * group + gi;
                    let qr = &q[(row * hq + qh) * dk..(row * hq + qh + 1) * dk];
                    let yo = &mut y[(ti * group + gi) * dv..(ti * group + gi + 1) * dv];
                    for (di, &qd) in qr.iter().enumerate() {
                        for (o, &s) in yo.iter_mut().zip(&state[di * dv..(di + 1) * dv]) {
                            *o += qd * s;
                        }
                    }
                    yo.iter_mut().for_each(|o| *o = *o * scale);
                }
            }
            (state, y)
        })
        .collect();

    let mut y = vec![F::zero(); b * t * hq * dv];
    let mut present = Vec::with_capacity(b * hkv * dk * dv);
    for (bh, (state, yh)) in results.into_iter().enumerate() {
        let (bi, h) = (bh / hkv, bh % hkv);
        for ti in 0..t {
            for gi in 0..group {
                let qh = h * group + gi;
                let dst = ((bi * t + ti) * hq + qh) * dv;
                let src = (ti * group + gi) * dv;
                y[dst..dst + dv].copy_from_slice(&yh[src..src + dv]);
            }
        }
        present.extend(state);
    }
    Ok(vec![
        Tensor::from_vec(&[b, t, hq * dv], y)?.cast(qt.dtype())?,
        Tensor::from_vec(&[b, hkv, dk, dv], present)?.cast(state_dtype)?,
    ])
}
