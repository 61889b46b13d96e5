//! Pad: constant, reflect, edge and wrap modes; negative pads crop.

use crossover_core::op::layout::PadMode;
use crossover_core::tensor::checked_numel;
use crossover_core::{invalid, map_array, ArcArrayD, Result, Tensor};
use ndarray::{ArrayD, IxDyn};

use super::norm_axes;

/// For each output position along one axis, the input position it copies (`None`: the
/// constant).
fn axis_map(dim: usize, begin: i64, out: usize, mode: PadMode) -> Result<Vec<Option<usize>>> {
    let d = dim as i64;
    (0..out as i64)
        .map(|o| {
            let i = o - begin;
            if (0..d).contains(&i) {
                return Ok(Some(i as usize));
            }
            if mode == PadMode::Constant {
                return Ok(None);
            }
            if d == 0 {
                return Err(invalid!("Pad: cannot pad an empty axis in {mode:?} mode"));
            }
            Ok(Some(match mode {
                PadMode::Edge => i.clamp(0, d - 1),
                PadMode::Wrap => i.rem_euclid(d),
                _ if d == 1 => 0,
                _ => {
                    let period = 2 * (d - 1);
                    let m = i.rem_euclid(period);
                    if m < d {
                        m
                    } else {
                        period - m
                    }
                }
            } as usize))
        })
        .collect()
}

fn fill<T: Clone>(
    a: &ArcArrayD<T>,
    maps: &[Vec<Option<usize>>],
    shape: &[usize],
    value: T,
) -> ArcArrayD<T> {
    let a = a.as_standard_layout();
    let src = a.as_slice().expect("standard layout");
    let in_shape = a.shape();
    let r = shape.len();
    let mut st = vec![1usize; r];
    for d in (0..r.saturating_sub(1)).rev() {
        st[d] = st[d + 1] * in_shape[d + 1];
    }
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let last = &maps[r - 1];
    let rows = n.checked_div(shape[r - 1]).unwrap_or(0);
    let mut pos = vec![0usize; r - 1];
    for _ in 0..rows {
        let base = pos
            .iter()
            .enumerate()
            .try_fold(0usize, |acc, (d, &p)| maps[d][p].map(|i| acc + i * st[d]));
        match base {
            None => out.resize(out.len() + shape[r - 1], value.clone()),
            Some(b) => out.extend(last.iter().map(|m| match m {
                Some(i) => src[b + i].clone(),
                None => value.clone(),
            })),
        }
        for d in (0..r - 1).rev() {
            pos[d] += 1;
            if pos[d] < shape[d] {
                break;
            }
            pos[d] = 0;
        }
    }
    ArrayD::from_shape_vec(IxDyn(shape), out)
        .expect("one row per position")
        .into_shared()
}

pub fn pad(
    t: &Tensor,
    pads: &[i64],
    axes: Option<&[i64]>,
    mode: PadMode,
    constant: &Tensor,
) -> Result<Tensor> {
    let s = t.shape();
    let r = s.len();
    let axes = match axes {
        Some(a) => norm_axes(a, r)?,
        None => (0..r).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(invalid!("Pad: {} pads for {} axes", pads.len(), axes.len()));
    }
    if r == 0 {
        return Ok(t.clone());
    }
    let mut begin = vec![0i64; r];
    let mut end = vec![0i64; r];
    for (k, &ax) in axes.iter().enumerate() {
        begin[ax] = pads[k];
        end[ax] = pads[k + axes.len()];
    }
    let mut shape = Vec::with_capacity(r);
    for d in 0..r {
        let o = (s[d] as i64)
            .saturating_add(begin[d])
            .saturating_add(end[d]);
        if o < 0 {
            return Err(invalid!(
                "Pad: pads {pads:?} crop axis {d} of {s:?} below zero"
            ));
        }
        shape.push(o as usize);
    }
    if checked_numel(&shape, t.dtype())? == 0 {
        return Tensor::zeros(t.dtype(), &shape);
    }
    let maps = (0..r)
        .map(|d| axis_map(s[d], begin[d], shape[d], mode))
        .collect::<Result<Vec<_>>>()?;
    let constant = constant.cast(t.dtype())?;
    Ok(map_array!(t, a => {
        let v = constant.arc()?.iter().next().cloned().unwrap_or_default();
        fill(a, &maps, &shape, v)
    }))
}
