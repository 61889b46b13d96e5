//! Recurrent kernels: RNN, GRU and LSTM in f32 (other float types are converted).

use crossover_core::op::rnn::{Activation, Direction, RnnAttrs};
use crossover_core::op::RnnOp;
use crossover_core::{invalid, DType, Error, Result, Tensor};
use ndarray::{s, Array2, Array3, ArrayView1, ArrayView2, Axis, Ix3, Zip};

use super::Inputs;

#[derive(Clone, Copy, PartialEq)]
enum Cell {
    Rnn,
    Gru { linear_before_reset: bool },
    Lstm { input_forget: bool },
}

impl Cell {
    fn gates(self) -> usize {
        match self {
            Cell::Rnn => 1,
            Cell::Gru { .. } => 3,
            Cell::Lstm { .. } => 4,
        }
    }
}

pub fn eval(op: &RnnOp, x: &Inputs) -> Result<Vec<Tensor>> {
    let (attrs, cell) = match op {
        RnnOp::RNN(a) => (a, Cell::Rnn),
        RnnOp::GRU {
            attrs,
            linear_before_reset,
        } => (
            attrs,
            Cell::Gru {
                linear_before_reset: *linear_before_reset,
            },
        ),
        RnnOp::LSTM {
            attrs,
            input_forget,
        } => (
            attrs,
            Cell::Lstm {
                input_forget: *input_forget,
            },
        ),
    };
    let dtype = x.get(0)?.dtype();
    if !matches!(dtype, DType::F32 | DType::F64 | DType::F16 | DType::BF16) {
        return Err(Error::Unsupported(format!(
            "{} on {dtype} tensors",
            <&str>::from(op)
        )));
    }
    let f32_input =
        |i: usize| -> Result<Option<Tensor>> { x.opt(i).map(|t| t.cast(DType::F32)).transpose() };
    let lstm = matches!(cell, Cell::Lstm { .. });
    let (h0_at, c0_at, p_at) = (5, 6, 7);
    let outs = run(
        attrs,
        cell,
        &x.get(0)?.cast(DType::F32)?,
        &x.get(1)?.cast(DType::F32)?,
        &x.get(2)?.cast(DType::F32)?,
        f32_input(3)?.as_ref(),
        x.opt(4).map(|t| t.to_i64_vec()).transpose()?,
        f32_input(h0_at)?.as_ref(),
        if lstm { f32_input(c0_at)? } else { None }.as_ref(),
        if lstm { f32_input(p_at)? } else { None }.as_ref(),
    )?;
    outs.into_iter()
        .map(|t| {
            if dtype == DType::F32 {
                Ok(t)
            } else {
                t.cast(dtype)
            }
        })
        .collect()
}

fn arr3(t: &Tensor, what: &str) -> Result<Array3<f32>> {
    t.view::<f32>()?
        .into_dimensionality::<Ix3>()
        .map(|a| a.to_owned())
        .map_err(|_| invalid!("{what} must be 3-D, got shape {:?}", t.shape()))
}

fn expect_shape(t: &Tensor, want: &[usize], what: &str) -> Result<()> {
    if t.shape() != want {
        return Err(invalid!(
            "{what} must have shape {want:?}, got {:?}",
            t.shape()
        ));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn run(
    attrs: &RnnAttrs,
    cell: Cell,
    x: &Tensor,
    w: &Tensor,
    r: &Tensor,
    b: Option<&Tensor>,
    seq_lens: Option<Vec<i64>>,
    h0: Option<&Tensor>,
    c0: Option<&Tensor>,
    p: Option<&Tensor>,
) -> Result<Vec<Tensor>> {
    let mut xs = arr3(x, "X")?;
    if attrs.batch_major {
        xs.swap_axes(0, 1);
    }
    let (seq, batch, input) = xs.dim();
    let dirs = attrs.direction.count();
    let g = cell.gates();
    let w = arr3(w, "W")?;
    let r = arr3(r, "R")?;
    let hidden = r.shape()[2];
    if attrs.hidden_size.is_some_and(|h| h != hidden) {
        return Err(invalid!(
            "hidden_size is {:?} but R has shape {:?}",
            attrs.hidden_size,
            r.shape()
        ));
    }
    if w.shape() != [dirs, g * hidden, input] {
        return Err(invalid!(
            "W must have shape {:?}, got {:?}",
            [dirs, g * hidden, input],
            w.shape()
        ));
    }
    if r.shape() != [dirs, g * hidden, hidden] {
        return Err(invalid!(
            "R must have shape {:?}, got {:?}",
            [dirs, g * hidden, hidden],
            r.shape()
        ));
    }
    let bias = match b {
        Some(b) => {
            expect_shape(b, &[dirs, 2 * g * hidden], "B")?;
            b.view::<f32>()?
                .into_dimensionality::<ndarray::Ix2>()
                .map_err(|e| invalid!("B: {e}"))?
                .to_owned()
        }
        None => Array2::zeros((dirs, 2 * g * hidden)),
    };
    let lens: Vec<usize> = match seq_lens {
        Some(v) => {
            if v.len() != batch {
                return Err(invalid!("sequence_lens must have {batch} entries"));
            }
            v.iter()
                .map(|&l| {
                    usize::try_from(l)
                        .ok()
                        .filter(|&l| l <= seq)
                        .ok_or_else(|| invalid!("sequence length {l} is outside 0..={seq}"))
                })
                .collect::<Result<_>>()?
        }
        None => vec![seq; batch],
    };
    let state = |t: Option<&Tensor>, what: &str| -> Result<Array3<f32>> {
        match t {
            Some(t) => {
                let mut a = arr3(t, what)?;
                if attrs.batch_major {
                    a.swap_axes(0, 1);
                }
                if a.dim() != (dirs, batch, hidden) {
                    return Err(invalid!("{what} has shape {:?}", t.shape()));
                }
                Ok(a)
            }
            None => Ok(Array3::zeros((dirs, batch, hidden))),
        }
    };
    let h0 = state(h0, "initial_h")?;
    let c0 = state(c0, "initial_c")?;
    let peep = match p {
        Some(p) => {
            expect_shape(p, &[dirs, 3 * hidden], "P")?;
            Some(
                p.view::<f32>()?
                    .into_dimensionality::<ndarray::Ix2>()
                    .map_err(|e| invalid!("P: {e}"))?
                    .to_owned(),
            )
        }
        None => None,
    };

    let mut y = ndarray::Array4::<f32>::zeros((seq, dirs, batch, hidden));
    let mut yh = Array3::<f32>::zeros((dirs, batch, hidden));
    let mut yc = Array3::<f32>::zeros((dirs, batch, hidden));
    let x2 = xs
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order((seq * batch, input))
        .map_err(|e| invalid!("{e}"))?;
    for d in 0..dirs {
        let reverse = attrs.direction == Direction::Reverse || d == 1;
        let wb = bias.slice(s![d, ..g * hidden]);
        let rb = bias.slice(s![d, g * hidden..]);
        // Input products of every step at once.
        let mut xw = x2.dot(&w.slice(s![d, .., ..]).t());
        xw += &wb;
        let dir = DirParams {
            cell,
            r: r.slice(s![d, .., ..]),
            rb,
            p: peep.as_ref().map(|p| p.row(d)),
            acts: &attrs.activations[d],
            clip: attrs.clip,
            hidden,
        };
        let mut h = h0.index_axis(Axis(0), d).to_owned();
        let mut c = c0.index_axis(Axis(0), d).to_owned();
        for step in 0..seq {
            let t = if reverse { seq - 1 - step } else { step };
            let xt = xw.slice(s![t * batch..(t + 1) * batch, ..]);
            let (nh, nc) = dir.step(xt, &h, &c);
            for (bi, &len) in lens.iter().enumerate() {
                if t < len {
                    h.row_mut(bi).assign(&nh.row(bi));
                    c.row_mut(bi).assign(&nc.row(bi));
                    y.slice_mut(s![t, d, bi, ..]).assign(&nh.row(bi));
                }
            }
        }
        yh.index_axis_mut(Axis(0), d).assign(&h);
        yc.index_axis_mut(Axis(0), d).assign(&c);
    }
    if attrs.batch_major {
        y = y
            .permuted_axes([2, 0, 1, 3])
            .as_standard_layout()
            .into_owned();
        yh = yh
            .permuted_axes([1, 0, 2])
            .as_standard_layout()
            .into_owned();
        yc = yc
            .permuted_axes([1, 0, 2])
            .as_standard_layout()
            .into_owned();
    }
    let mut out = vec![Tensor::from(y.into_dyn()), Tensor::from(yh.into_dyn())];
    if matches!(cell, Cell::Lstm { .. }) {
        out.push(Tensor::from(yc.into_dyn()));
    }
    Ok(out)
}

struct DirParams<'a> {
    cell: Cell,
    r: ArrayView2<'a, f32>,
    rb: ArrayView1<'a, f32>,
    p: Option<ArrayView1<'a, f32>>,
    acts: &'a [Activation],
    clip: Option<f32>,
    hidden: usize,
}

impl DirParams<'_> {
    fn clip(&self, v: f32) -> f32 {
        match self.clip {
            Some(c) => v.clamp(-c, c),
            None => v,
        }
    }

    fn act(&self, i: usize, v: f32) -> f32 {
        self.acts[i].apply(v)
    }

    /// One time step for the whole batch: the new hidden (and cell) state.
    fn step(
        &self,
        xw: ArrayView2<f32>,
        h: &Array2<f32>,
        c: &Array2<f32>,
    ) -> (Array2<f32>, Array2<f32>) {
        let hs = self.hidden;
        match self.cell {
            Cell::Rnn => {
                let mut pre = h.dot(&self.r.t());
                pre += &xw;
                pre += &self.rb;
                pre.mapv_inplace(|v| self.act(0, self.clip(v)));
                (pre, c.clone())
            }
            Cell::Gru {
                linear_before_reset,
            } => {
                let rz = self.r.slice(s![..2 * hs, ..]);
                let rh = self.r.slice(s![2 * hs.., ..]);
                let mut zr = h.dot(&rz.t());
                zr += &xw.slice(s![.., ..2 * hs]);
                zr += &self.rb.slice(s![..2 * hs]);
                zr.mapv_inplace(|v| self.act(0, self.clip(v)));
                let (z, r) = zr.view().split_at(Axis(1), hs);
                let rbh = self.rb.slice(s![2 * hs..]);
                let mut cand = if linear_before_reset {
                    let mut hr = h.dot(&rh.t());
                    hr += &rbh;
                    hr *= &r;
                    hr
                } else {
                    let mut rh_in = h.clone();
                    rh_in *= &r;
                    let mut hr = rh_in.dot(&rh.t());
                    hr += &rbh;
                    hr
                };
                cand += &xw.slice(s![.., 2 * hs..]);
                cand.mapv_inplace(|v| self.act(1, self.clip(v)));
                Zip::from(&mut cand).and(&z).and(h).for_each(|n, &z, &hp| {
                    *n = (1.0 - z) * *n + z * hp;
                });
                (cand, c.clone())
            }
            Cell::Lstm { input_forget } => {
                let mut gates = h.dot(&self.r.t());
                gates += &xw;
                gates += &self.rb;
                let batch = h.nrows();
                let mut nh = Array2::<f32>::zeros((batch, hs));
                let mut nc = Array2::<f32>::zeros((batch, hs));
                let peep = |k: usize, j: usize| self.p.map_or(0.0, |p| p[k * hs + j]);
                for b in 0..batch {
                    let row = gates.row(b);
                    for j in 0..hs {
                        let cp = c[[b, j]];
                        let i = self.act(0, self.clip(row[j] + peep(0, j) * cp));
                        let f = if input_forget {
                            1.0 - i
                        } else {
                            self.act(0, self.clip(row[2 * hs + j] + peep(2, j) * cp))
                        };
                        let cc = self.act(1, self.clip(row[3 * hs + j]));
                        let cn = f * cp + i * cc;
                        let o = self.act(0, self.clip(row[hs + j] + peep(1, j) * cn));
                        nc[[b, j]] = cn;
                        nh[[b, j]] = o * self.act(2, cn);
                    }
                }
                (nh, nc)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(direction: Direction) -> RnnAttrs {
        RnnAttrs {
            direction,
            hidden_size: None,
            activations: vec![vec![Activation::Tanh]; direction.count()],
            clip: None,
            batch_major: false,
        }
    }

    fn ones(shape: &[usize]) -> Tensor {
        Tensor::from_vec(shape, vec![1.0f32; shape.iter().product()]).unwrap()
    }

    #[test]
    fn sequence_lens_stop_early_and_zero_the_rest() {
        // seq 2, batch 2, input 1, hidden 1; the second sequence has length 1.
        let (x, w, r) = (ones(&[2, 2, 1]), ones(&[1, 1, 1]), ones(&[1, 1, 1]));
        let out = run(
            &attrs(Direction::Forward),
            Cell::Rnn,
            &x,
            &w,
            &r,
            None,
            Some(vec![2, 1]),
            None,
            None,
            None,
        )
        .unwrap();
        let y: Vec<f32> = out[0].view::<f32>().unwrap().iter().copied().collect();
        let h1 = 1f32.tanh();
        let h2 = (1.0 + h1).tanh();
        assert_eq!(y, vec![h1, h1, h2, 0.0]);
        let yh: Vec<f32> = out[1].view::<f32>().unwrap().iter().copied().collect();
        assert_eq!(yh, vec![h2, h1]);
    }

    #[test]
    fn mismatched_weights_are_errors() {
        let x = ones(&[2, 1, 3]);
        let run_with = |w: &Tensor, seq: Option<Vec<i64>>| {
            run(
                &attrs(Direction::Bidirectional),
                Cell::Rnn,
                &x,
                w,
                &ones(&[2, 1, 1]),
                None,
                seq,
                None,
                None,
                None,
            )
        };
        assert!(run_with(&ones(&[1, 1, 3]), None).is_err());
        assert!(run_with(&ones(&[2, 1, 3]), Some(vec![5])).is_err());
        assert!(run_with(&ones(&[2, 1, 3]), None).is_ok());
    }
}
