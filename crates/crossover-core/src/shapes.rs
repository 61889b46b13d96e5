//! Static shape inference: the dtype and shape of each value from the declared inputs,
//! the constants and per-op rules, with named dimensions (`batch`) carried through.
//!
//! Rules cover the ops of MLPs, CNNs and transformers; any other op leaves its outputs
//! unknown, which only means less is known before running. A rule that finds the model
//! inconsistent with itself (a MatMul whose fixed inner dimensions differ) is an error at
//! load time rather than at the first run.

use crate::graph::{Dim, Node};
use crate::op::conv::{ConvAttrs, ConvOp, PoolAttrs};
use crate::op::elementwise::ElementwiseOp as E;
use crate::op::layout::{slice_len, slice_range, split_sizes, LayoutOp as L};
use crate::op::linalg::LinalgOp;
use crate::op::nn::NnOp;
use crate::op::reduce::ReduceOp as R;
use crate::{invalid_model, DType, Op, Result, Tensor};

/// What is known about one input of a node.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fact<'a> {
    pub dtype: Option<DType>,
    pub shape: Option<&'a [Dim]>,
    /// The value, when it is a constant.
    pub value: Option<&'a Tensor>,
    /// False for an optional input the node leaves empty.
    pub present: bool,
}

/// What inference found about one output.
#[derive(Clone, Debug, Default)]
pub struct Inferred {
    pub dtype: Option<DType>,
    pub shape: Option<Vec<Dim>>,
    /// The value, when the shapes alone determine it (`Shape` of a static tensor).
    pub value: Option<Tensor>,
}

impl Inferred {
    fn new(dtype: Option<DType>, shape: Option<Vec<Dim>>) -> Self {
        Inferred {
            dtype,
            shape,
            value: None,
        }
    }

    fn like(f: &Fact) -> Self {
        Self::new(f.dtype, f.shape.map(<[Dim]>::to_vec))
    }
}

/// The facts about `node`'s outputs, one per output slot; unknown ones are default.
pub fn infer(node: &Node, inputs: &[Fact]) -> Result<Vec<Inferred>> {
    let mut out = rule(&node.op, inputs)?;
    out.resize(node.outputs.len(), Inferred::default());
    Ok(out)
}

fn rule(op: &Op, x: &[Fact]) -> Result<Vec<Inferred>> {
    let none = || Ok(Vec::new());
    let input = |i: usize| x.get(i).copied().unwrap_or_default();
    let x0 = input(0);
    Ok(match op {
        Op::Elementwise(e) => match e {
            E::IsNaN | E::IsInf { .. } => vec![Inferred::new(Some(DType::Bool), owned(x0.shape))],
            E::Equal
            | E::Less
            | E::Greater
            | E::LessOrEqual
            | E::GreaterOrEqual
            | E::And
            | E::Or
            | E::Xor => vec![Inferred::new(Some(DType::Bool), broadcast_all(x)?)],
            E::Add
            | E::Sub
            | E::Mul
            | E::Div
            | E::Pow
            | E::Mod { .. }
            | E::BitShift { .. }
            | E::BitwiseAnd
            | E::BitwiseOr
            | E::BitwiseXor
            | E::Sum
            | E::Mean
            | E::Min
            | E::Max => vec![Inferred::new(x0.dtype, broadcast_all(x)?)],
            E::Where => vec![Inferred::new(input(1).dtype, broadcast_all(x)?)],
            E::Cast { to, .. } => vec![Inferred::new(Some(*to), owned(x0.shape))],
            E::CastLike { .. } => vec![Inferred::new(input(1).dtype, owned(x0.shape))],
            E::QuantizeLinear { .. }
            | E::DequantizeLinear { .. }
            | E::DynamicQuantizeLinear
            | E::BitCast { .. }
            | E::SwiGLU { .. } => return none(),
            // Every other elementwise op maps each element to one of the same type.
            _ => vec![Inferred::like(&x0)],
        },
        Op::Linalg(LinalgOp::MatMul) => vec![Inferred::new(x0.dtype, matmul(&x0, &input(1))?)],
        Op::Linalg(LinalgOp::Gemm {
            trans_a, trans_b, ..
        }) => vec![Inferred::new(
            x0.dtype,
            gemm(&x0, &input(1), *trans_a, *trans_b)?,
        )],
        Op::Conv(ConvOp::Conv(a)) => vec![Inferred::new(x0.dtype, conv(a, &x0, &input(1))?)],
        Op::Conv(ConvOp::MaxPool { pool, .. }) => {
            let shape = pool_shape(pool, &x0)?;
            vec![
                Inferred::new(x0.dtype, shape.clone()),
                Inferred::new(Some(DType::I64), shape),
            ]
        }
        Op::Conv(ConvOp::AveragePool { pool, .. } | ConvOp::LpPool { pool, .. }) => {
            vec![Inferred::new(x0.dtype, pool_shape(pool, &x0)?)]
        }
        Op::Conv(
            ConvOp::GlobalAveragePool | ConvOp::GlobalMaxPool | ConvOp::GlobalLpPool { .. },
        ) => {
            let shape = x0.shape.filter(|s| s.len() >= 2).map(|s| {
                let mut v = s[..2].to_vec();
                v.resize(s.len(), Dim::Fixed(1));
                v
            });
            vec![Inferred::new(x0.dtype, shape)]
        }
        Op::Nn(n) => match n {
            NnOp::Softmax { .. }
            | NnOp::LogSoftmax { .. }
            | NnOp::Hardmax { .. }
            | NnOp::RMSNormalization { .. }
            | NnOp::InstanceNormalization { .. }
            | NnOp::GroupNormalization { .. }
            | NnOp::LRN { .. }
            | NnOp::MeanVarianceNormalization { .. }
            | NnOp::LpNormalization { .. } => vec![Inferred::like(&x0)],
            NnOp::LayerNormalization { .. } => vec![Inferred::like(&x0)],
            NnOp::BatchNormalization {
                training: false, ..
            } => vec![Inferred::like(&x0)],
            NnOp::Dropout { .. } => vec![
                Inferred::like(&x0),
                Inferred::new(Some(DType::Bool), owned(x0.shape)),
            ],
            _ => return none(),
        },
        Op::Layout(l) => match l {
            L::Identity | L::Trilu { .. } => vec![Inferred::like(&x0)],
            L::Reshape { allow_zero } => {
                vec![Inferred::new(
                    x0.dtype,
                    reshape(&x0, &input(1), *allow_zero)?,
                )]
            }
            L::Flatten { axis } => vec![Inferred::new(x0.dtype, flatten(&x0, *axis)?)],
            L::Transpose { perm } => {
                vec![Inferred::new(x0.dtype, transpose(&x0, perm.as_deref())?)]
            }
            L::Squeeze { axes } => {
                let axes = axes_from(axes.as_deref(), &input(1))?;
                vec![Inferred::new(x0.dtype, squeeze(&x0, axes.as_deref())?)]
            }
            L::Unsqueeze { axes } => {
                let axes = axes_from(axes.as_deref(), &input(1))?;
                vec![Inferred::new(x0.dtype, unsqueeze(&x0, axes.as_deref())?)]
            }
            L::Concat { axis } => vec![Inferred::new(x0.dtype, concat(x, *axis)?)],
            L::Gather { axis } => vec![Inferred::new(x0.dtype, gather(&x0, &input(1), *axis)?)],
            L::Expand => vec![Inferred::new(x0.dtype, expand(&x0, &input(1))?)],
            L::Slice { starts, ends, axes } => {
                let shape = match (starts, ends) {
                    (Some(s), Some(e)) => slice(&x0, s, e, axes.as_deref(), None)?,
                    _ => match (
                        consts(&input(1))?,
                        consts(&input(2))?,
                        consts(&input(3))?,
                        consts(&input(4))?,
                    ) {
                        (Known(Some(s)), Known(Some(e)), axes, steps)
                            if axes.is_known() && steps.is_known() =>
                        {
                            slice(&x0, &s, &e, axes.get(), steps.get())?
                        }
                        _ => None,
                    },
                };
                vec![Inferred::new(x0.dtype, shape)]
            }
            L::Split {
                axis: a,
                split,
                num_outputs,
            } => {
                let sizes = match split {
                    Some(s) => Known(Some(s.clone())),
                    None => consts(&input(1))?,
                };
                let Some(s) = x0.shape else { return none() };
                let a = axis(*a, s.len())?;
                let sizes = match (sizes, s[a].fixed()) {
                    (Known(Some(sizes)), d) => match d {
                        Some(d) => split_sizes(d, Some(&sizes), sizes.len())?,
                        None => crate::tensor::dims_to_shape(&sizes, "Split")?,
                    },
                    (Known(None), Some(d)) => split_sizes(d, None, *num_outputs)?,
                    _ => return none(),
                };
                sizes
                    .into_iter()
                    .map(|n| {
                        let mut shape = s.to_vec();
                        shape[a] = Dim::Fixed(n);
                        Inferred::new(x0.dtype, Some(shape))
                    })
                    .collect()
            }
            L::Tile => {
                let shape = match (x0.shape, input(1).value) {
                    (Some(s), Some(r)) => Some(tile(s, &r.to_i64_vec()?)?),
                    _ => None,
                };
                vec![Inferred::new(x0.dtype, shape)]
            }
            L::Pad { pads, .. } => {
                let pads = match pads {
                    Some(p) => Known(Some(p.clone())),
                    None => consts(&input(1))?,
                };
                let shape = match (x0.shape, pads, consts(&input(3))?) {
                    (Some(s), Known(Some(p)), axes) if axes.is_known() => {
                        Some(pad(s, &p, axes.get())?)
                    }
                    _ => None,
                };
                vec![Inferred::new(x0.dtype, shape)]
            }
            L::Shape { start, end } => vec![shape_of(&x0, *start, *end)],
            L::Size => {
                let value = x0
                    .shape
                    .and_then(static_dims)
                    .map(|s| Tensor::scalar(s.iter().product::<usize>() as i64));
                vec![Inferred {
                    dtype: Some(DType::I64),
                    shape: Some(Vec::new()),
                    value,
                }]
            }
            L::ConstantOfShape { value } => {
                let dtype = value.as_ref().map_or(DType::F32, |v| v.0.dtype());
                let shape = x0.value.map(dims_from_values).transpose()?;
                vec![Inferred::new(Some(dtype), shape)]
            }
            _ => return none(),
        },
        Op::Reduce(r) => match (r.reduction(), r) {
            (Some(red), _) => {
                let Some(axes) = axes_from(red.axes, &input(1))? else {
                    return none();
                };
                let shape = if axes.is_empty() && red.noop_with_empty_axes {
                    owned(x0.shape)
                } else {
                    reduce(&x0, &axes, red.keep_dims)?
                };
                vec![Inferred::new(x0.dtype, shape)]
            }
            (
                None,
                R::ArgMax {
                    axis, keep_dims, ..
                }
                | R::ArgMin {
                    axis, keep_dims, ..
                },
            ) => {
                vec![Inferred::new(
                    Some(DType::I64),
                    reduce(&x0, &[*axis], *keep_dims)?,
                )]
            }
            (None, R::CumSum { .. } | R::CumProd { .. }) => vec![Inferred::like(&x0)],
            _ => return none(),
        },
        _ => return none(),
    })
}

/// An optional integer-list input: absent, a known constant, or computed at run time.
enum Ints {
    Known(Option<Vec<i64>>),
    Dynamic,
}
use Ints::{Dynamic, Known};

impl Ints {
    fn is_known(&self) -> bool {
        matches!(self, Known(_))
    }

    fn get(&self) -> Option<&[i64]> {
        match self {
            Known(v) => v.as_deref(),
            Dynamic => None,
        }
    }
}

fn consts(f: &Fact) -> Result<Ints> {
    Ok(match (f.present, f.value) {
        (false, _) => Known(None),
        (true, Some(v)) => Known(Some(v.to_i64_vec()?)),
        (true, None) => Dynamic,
    })
}

fn slice(
    x: &Fact,
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> Result<Option<Vec<Dim>>> {
    let Some(s) = x.shape else { return Ok(None) };
    let axes: Vec<usize> = match axes {
        Some(a) => a.iter().map(|&a| axis(a, s.len())).collect::<Result<_>>()?,
        None => (0..starts.len()).collect(),
    };
    if starts.len() != ends.len()
        || axes.len() != starts.len()
        || steps.is_some_and(|st| st.len() != starts.len())
    {
        return Err(invalid_model!(
            "Slice starts, ends, axes and steps differ in length"
        ));
    }
    let mut out = s.to_vec();
    for (i, &a) in axes.iter().enumerate() {
        let step = steps.map_or(1, |st| st[i]);
        if step == 0 {
            return Err(invalid_model!("Slice step 0 on axis {a}"));
        }
        out[a] = match s[a].fixed() {
            Some(d) => {
                let (lo, hi) = slice_range(d as i64, starts[i], ends[i], step);
                Dim::Fixed(slice_len(lo, hi, step))
            }
            None => Dim::Unknown,
        };
    }
    Ok(Some(out))
}

fn tile(s: &[Dim], repeats: &[i64]) -> Result<Vec<Dim>> {
    if repeats.len() != s.len() {
        return Err(invalid_model!(
            "Tile has {} repeats for rank {}",
            repeats.len(),
            s.len()
        ));
    }
    s.iter()
        .zip(repeats)
        .map(|(d, &r)| {
            let r =
                usize::try_from(r).map_err(|_| invalid_model!("Tile repeat {r} is negative"))?;
            Ok(match (d, r) {
                (_, 1) => d.clone(),
                (Dim::Fixed(n), r) => Dim::Fixed(n * r),
                _ => Dim::Unknown,
            })
        })
        .collect()
}

fn pad(s: &[Dim], pads: &[i64], axes: Option<&[i64]>) -> Result<Vec<Dim>> {
    let axes: Vec<usize> = match axes {
        Some(a) => a.iter().map(|&a| axis(a, s.len())).collect::<Result<_>>()?,
        None => (0..s.len()).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(invalid_model!(
            "Pad has {} pads for {} axes",
            pads.len(),
            axes.len()
        ));
    }
    let mut out = s.to_vec();
    for (i, &a) in axes.iter().enumerate() {
        let (b, e) = (pads[i], pads[i + axes.len()]);
        out[a] = match &s[a] {
            _ if b == 0 && e == 0 => s[a].clone(),
            Dim::Fixed(n) => {
                let n = *n as i64 + b + e;
                Dim::Fixed(usize::try_from(n).map_err(|_| {
                    invalid_model!("Pad {pads:?} leaves axis {a} with a negative size")
                })?)
            }
            _ => Dim::Unknown,
        };
    }
    Ok(out)
}

fn owned(s: Option<&[Dim]>) -> Option<Vec<Dim>> {
    s.map(<[Dim]>::to_vec)
}

fn static_dims(s: &[Dim]) -> Option<Vec<usize>> {
    s.iter().map(Dim::fixed).collect()
}

/// An axis in `-rank..rank` as an index, or an error naming it.
fn axis(a: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    if a < -r || a >= r {
        return Err(invalid_model!("axis {a} is out of range for rank {rank}"));
    }
    Ok(if a < 0 { a + r } else { a } as usize)
}

/// One dimension of a numpy broadcast; `None` when the two cannot broadcast.
fn broadcast_dim(a: &Dim, b: &Dim) -> Option<Dim> {
    Some(match (a, b) {
        (x, y) if x == y => x.clone(),
        (Dim::Fixed(1), y) => y.clone(),
        (x, Dim::Fixed(1)) => x.clone(),
        (Dim::Fixed(_), Dim::Fixed(_)) => return None,
        // A named or unknown dimension against n > 1 must be n (or 1, giving n).
        (Dim::Fixed(n), _) | (_, Dim::Fixed(n)) => Dim::Fixed(*n),
        _ => Dim::Unknown,
    })
}

/// The broadcast of every input's shape; unknown when any is.
fn broadcast_all(x: &[Fact]) -> Result<Option<Vec<Dim>>> {
    let mut acc: Vec<Dim> = Vec::new();
    for f in x {
        let Some(s) = f.shape else { return Ok(None) };
        let rank = acc.len().max(s.len());
        let pad = |v: &[Dim], i: usize| {
            (i + v.len())
                .checked_sub(rank)
                .map_or(Dim::Fixed(1), |j| v[j].clone())
        };
        acc = (0..rank)
            .map(|i| {
                broadcast_dim(&pad(&acc, i), &pad(s, i)).ok_or_else(|| {
                    invalid_model!(
                        "shapes [{}] and [{}] do not broadcast",
                        crate::graph::render_dims(&acc),
                        crate::graph::render_dims(s)
                    )
                })
            })
            .collect::<Result<_>>()?;
    }
    Ok(Some(acc))
}

/// Two dimensions that must be equal: the better known one, or an error when both are
/// fixed and differ.
fn unify(a: &Dim, b: &Dim, what: &str) -> Result<Dim> {
    match (a, b) {
        (Dim::Fixed(p), Dim::Fixed(q)) if p != q => {
            Err(invalid_model!("{what}: {p} and {q} differ"))
        }
        (Dim::Fixed(_), _) | (Dim::Param(_), Dim::Unknown) => Ok(a.clone()),
        _ => Ok(b.clone()),
    }
}

fn matmul(a: &Fact, b: &Fact) -> Result<Option<Vec<Dim>>> {
    let (Some(a), Some(b)) = (a.shape, b.shape) else {
        return Ok(None);
    };
    if a.is_empty() || b.is_empty() {
        return Err(invalid_model!("MatMul operands must have rank 1 or more"));
    }
    // Rank-1 operands are promoted to matrices and the added axis is dropped after.
    let a2: Vec<Dim> = if a.len() == 1 {
        vec![Dim::Fixed(1), a[0].clone()]
    } else {
        a.to_vec()
    };
    let b2: Vec<Dim> = if b.len() == 1 {
        vec![b[0].clone(), Dim::Fixed(1)]
    } else {
        b.to_vec()
    };
    let (ra, rb) = (a2.len(), b2.len());
    unify(&a2[ra - 1], &b2[rb - 2], "MatMul inner dimensions")?;
    let batch = broadcast_all(&[
        Fact {
            shape: Some(&a2[..ra - 2]),
            ..Default::default()
        },
        Fact {
            shape: Some(&b2[..rb - 2]),
            ..Default::default()
        },
    ])?
    .unwrap_or_default();
    let mut out = batch;
    if a.len() > 1 {
        out.push(a2[ra - 2].clone());
    }
    if b.len() > 1 {
        out.push(b2[rb - 1].clone());
    }
    Ok(Some(out))
}

fn gemm(a: &Fact, b: &Fact, trans_a: bool, trans_b: bool) -> Result<Option<Vec<Dim>>> {
    let (Some(a), Some(b)) = (a.shape, b.shape) else {
        return Ok(None);
    };
    if a.len() != 2 || b.len() != 2 {
        return Err(invalid_model!(
            "Gemm needs 2-D operands, got ranks {} and {}",
            a.len(),
            b.len()
        ));
    }
    let (m, ka) = if trans_a {
        (&a[1], &a[0])
    } else {
        (&a[0], &a[1])
    };
    let (kb, n) = if trans_b {
        (&b[1], &b[0])
    } else {
        (&b[0], &b[1])
    };
    unify(ka, kb, "Gemm inner dimensions")?;
    Ok(Some(vec![m.clone(), n.clone()]))
}

/// `[N, M, spatial…]` for a convolution of `x` `[N, C, spatial…]` by `w` `[M, C/group, kernel…]`.
fn conv(a: &ConvAttrs, x: &Fact, w: &Fact) -> Result<Option<Vec<Dim>>> {
    let (Some(xs), Some(ws)) = (x.shape, w.shape) else {
        return Ok(None);
    };
    if xs.len() < 3 || ws.len() != xs.len() {
        return Err(invalid_model!(
            "Conv needs an input of rank 3 or more and weights of the same rank, got ranks {} and {}",
            xs.len(),
            ws.len()
        ));
    }
    if let (Some(c), Some(cw)) = (xs[1].fixed(), ws[1].fixed()) {
        if c as i64 != cw as i64 * a.group {
            return Err(invalid_model!(
                "Conv input has {c} channels but the weights expect {cw} per group × {} groups",
                a.group
            ));
        }
    }
    let mut out = vec![xs[0].clone(), ws[0].clone()];
    out.extend(spatial(&a.window, &xs[2..], static_dims(&ws[2..]), false)?);
    Ok(Some(out))
}

fn pool_shape(p: &PoolAttrs, x: &Fact) -> Result<Option<Vec<Dim>>> {
    let Some(xs) = x.shape else { return Ok(None) };
    if xs.len() < 3 {
        return Err(invalid_model!(
            "pooling needs an input of rank 3 or more, got {}",
            xs.len()
        ));
    }
    let kernel = p
        .window
        .kernel_shape
        .as_deref()
        .map(|k| {
            k.iter()
                .map(|&v| usize::try_from(v).ok())
                .collect::<Option<Vec<_>>>()
        })
        .and_then(|k| k);
    let mut out = xs[..2].to_vec();
    out.extend(spatial(&p.window, &xs[2..], kernel, p.ceil_mode)?);
    Ok(Some(out))
}

/// Output spatial dimensions, through the same window resolution the kernels use.
fn spatial(
    w: &crate::op::conv::Window,
    image: &[Dim],
    kernel: Option<Vec<usize>>,
    ceil_mode: bool,
) -> Result<Vec<Dim>> {
    match (static_dims(image), kernel) {
        (Some(image), Some(kernel)) => Ok(w
            .resolve(&image, &kernel, ceil_mode)?
            .grid
            .into_iter()
            .map(Dim::Fixed)
            .collect()),
        _ => Ok(vec![Dim::Unknown; image.len()]),
    }
}

/// Non-negative integers held by a constant, as fixed dimensions.
fn dims_from_values(t: &Tensor) -> Result<Vec<Dim>> {
    t.to_i64_vec()?
        .into_iter()
        .map(|v| {
            usize::try_from(v)
                .map(Dim::Fixed)
                .map_err(|_| invalid_model!("dimension {v} is negative"))
        })
        .collect()
}

fn reshape(x: &Fact, shape: &Fact, allow_zero: bool) -> Result<Option<Vec<Dim>>> {
    let Some(target) = shape.value else {
        return Ok(None);
    };
    let target = target.to_i64_vec()?;
    let src = x.shape;
    let mut out = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, &t) in target.iter().enumerate() {
        out.push(match t {
            -1 => {
                if infer_at.replace(i).is_some() {
                    return Err(invalid_model!(
                        "Reshape shape {target:?} has more than one -1"
                    ));
                }
                Dim::Unknown
            }
            0 if !allow_zero => match src {
                Some(s) => s.get(i).cloned().ok_or_else(|| {
                    invalid_model!("Reshape shape {target:?} copies axis {i} the input lacks")
                })?,
                None => Dim::Unknown,
            },
            t if t < 0 => {
                return Err(invalid_model!(
                    "Reshape shape {target:?} has a negative size"
                ))
            }
            t => Dim::Fixed(t as usize),
        });
    }
    let known = |v: &[Dim]| static_dims(v).map(|d| d.iter().product::<usize>());
    if let Some(total) = src.and_then(known) {
        match infer_at {
            Some(i) => {
                let rest: Option<usize> = out
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, d)| d.fixed())
                    .product();
                if let Some(rest) = rest.filter(|&r| r > 0) {
                    if total % rest != 0 {
                        return Err(invalid_model!(
                            "cannot reshape {total} elements to {target:?}"
                        ));
                    }
                    out[i] = Dim::Fixed(total / rest);
                }
            }
            None => {
                if let Some(n) = known(&out) {
                    if n != total {
                        return Err(invalid_model!(
                            "cannot reshape {total} elements to {target:?}"
                        ));
                    }
                }
            }
        }
    }
    Ok(Some(out))
}

fn flatten(x: &Fact, a: i64) -> Result<Option<Vec<Dim>>> {
    let Some(s) = x.shape else { return Ok(None) };
    let split = if a == s.len() as i64 {
        s.len()
    } else {
        axis(a, s.len().max(1))?
    };
    let product = |d: &[Dim]| -> Dim {
        static_dims(d).map_or(Dim::Unknown, |v| Dim::Fixed(v.iter().product()))
    };
    Ok(Some(vec![product(&s[..split]), product(&s[split..])]))
}

fn transpose(x: &Fact, perm: Option<&[i64]>) -> Result<Option<Vec<Dim>>> {
    let Some(s) = x.shape else { return Ok(None) };
    let perm: Vec<usize> = match perm {
        None => (0..s.len()).rev().collect(),
        Some(p) => p.iter().map(|&a| axis(a, s.len())).collect::<Result<_>>()?,
    };
    let mut seen = vec![false; s.len()];
    if perm.len() != s.len() || perm.iter().any(|&a| std::mem::replace(&mut seen[a], true)) {
        return Err(invalid_model!(
            "Transpose perm {perm:?} is not a permutation of rank {}",
            s.len()
        ));
    }
    Ok(Some(perm.iter().map(|&a| s[a].clone()).collect()))
}

/// Axes from an attribute, or from a constant input; `None` when neither is known.
fn axes_from(attr: Option<&[i64]>, input: &Fact) -> Result<Option<Vec<i64>>> {
    match (attr, input.value) {
        (Some(a), _) => Ok(Some(a.to_vec())),
        (None, Some(v)) => Ok(Some(v.to_i64_vec()?)),
        // No attribute and no input means the op's default: the empty list.
        (None, None) if !input.present => Ok(Some(Vec::new())),
        (None, None) => Ok(None),
    }
}

fn squeeze(x: &Fact, axes: Option<&[i64]>) -> Result<Option<Vec<Dim>>> {
    let (Some(s), Some(axes)) = (x.shape, axes) else {
        return Ok(None);
    };
    if axes.is_empty() {
        // Without axes every 1 goes; a dimension not known to be 1 leaves the rank unknown.
        if s.iter().any(|d| d.fixed().is_none()) {
            return Ok(None);
        }
        return Ok(Some(
            s.iter().filter(|d| **d != Dim::Fixed(1)).cloned().collect(),
        ));
    }
    let drop: Vec<usize> = axes
        .iter()
        .map(|&a| axis(a, s.len()))
        .collect::<Result<_>>()?;
    for &a in &drop {
        if let Some(n) = s[a].fixed().filter(|&n| n != 1) {
            return Err(invalid_model!("Squeeze axis {a} has size {n}, not 1"));
        }
    }
    Ok(Some(
        s.iter()
            .enumerate()
            .filter(|(i, _)| !drop.contains(i))
            .map(|(_, d)| d.clone())
            .collect(),
    ))
}

fn unsqueeze(x: &Fact, axes: Option<&[i64]>) -> Result<Option<Vec<Dim>>> {
    let (Some(s), Some(axes)) = (x.shape, axes) else {
        return Ok(None);
    };
    let rank = s.len() + axes.len();
    let mut added: Vec<usize> = axes.iter().map(|&a| axis(a, rank)).collect::<Result<_>>()?;
    added.sort_unstable();
    if added.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid_model!("Unsqueeze axes {axes:?} repeat"));
    }
    let mut rest = s.iter();
    Ok(Some(
        (0..rank)
            .map(|i| {
                if added.binary_search(&i).is_ok() {
                    Dim::Fixed(1)
                } else {
                    rest.next().cloned().unwrap_or(Dim::Unknown)
                }
            })
            .collect(),
    ))
}

fn concat(x: &[Fact], a: i64) -> Result<Option<Vec<Dim>>> {
    let Some(shapes) = x.iter().map(|f| f.shape).collect::<Option<Vec<_>>>() else {
        return Ok(None);
    };
    let Some(first) = shapes.first() else {
        return Ok(None);
    };
    let a = axis(a, first.len())?;
    let mut out = first.to_vec();
    let mut total = first[a].fixed();
    for s in &shapes[1..] {
        if s.len() != out.len() {
            return Err(invalid_model!(
                "Concat inputs have ranks {} and {}",
                out.len(),
                s.len()
            ));
        }
        for (i, d) in s.iter().enumerate() {
            if i != a {
                out[i] = unify(&out[i], d, "Concat dimensions off the axis")?;
            }
        }
        total = total.zip(s[a].fixed()).map(|(p, q)| p + q);
    }
    out[a] = total.map_or(Dim::Unknown, Dim::Fixed);
    Ok(Some(out))
}

fn gather(x: &Fact, idx: &Fact, a: i64) -> Result<Option<Vec<Dim>>> {
    let (Some(s), Some(i)) = (x.shape, idx.shape) else {
        return Ok(None);
    };
    let a = axis(a, s.len())?;
    let mut out = s[..a].to_vec();
    out.extend_from_slice(i);
    out.extend_from_slice(&s[a + 1..]);
    Ok(Some(out))
}

fn expand(x: &Fact, shape: &Fact) -> Result<Option<Vec<Dim>>> {
    let Some(target) = shape.value else {
        return Ok(None);
    };
    let target = dims_from_values(target)?;
    broadcast_all(&[
        *x,
        Fact {
            shape: Some(&target),
            ..Default::default()
        },
    ])
}

fn shape_of(x: &Fact, start: i64, end: Option<i64>) -> Inferred {
    let Some(s) = x.shape else {
        return Inferred::new(Some(DType::I64), None);
    };
    let r = s.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let (lo, hi) = (clamp(start), clamp(end.unwrap_or(r)));
    let dims = &s[lo..hi.max(lo)];
    Inferred {
        dtype: Some(DType::I64),
        shape: Some(vec![Dim::Fixed(dims.len())]),
        value: static_dims(dims).and_then(|d| {
            Tensor::from_vec(&[d.len()], d.into_iter().map(|v| v as i64).collect()).ok()
        }),
    }
}

fn reduce(x: &Fact, axes: &[i64], keep_dims: bool) -> Result<Option<Vec<Dim>>> {
    let Some(s) = x.shape else { return Ok(None) };
    let axes: Vec<usize> = if axes.is_empty() {
        (0..s.len()).collect()
    } else {
        axes.iter()
            .map(|&a| axis(a, s.len()))
            .collect::<Result<_>>()?
    };
    Ok(Some(
        s.iter()
            .enumerate()
            .filter_map(|(i, d)| match (axes.contains(&i), keep_dims) {
                (false, _) => Some(d.clone()),
                (true, true) => Some(Dim::Fixed(1)),
                (true, false) => None,
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Dim::{Fixed, Param};

    fn f(shape: &[Dim]) -> Fact<'_> {
        Fact {
            dtype: Some(DType::F32),
            shape: Some(shape),
            value: None,
            present: true,
        }
    }

    fn p(n: &str) -> Dim {
        Param(n.into())
    }

    #[test]
    fn broadcast_keeps_names_and_rejects_conflicts() {
        let a = [p("batch"), Fixed(1), Fixed(4)];
        let b = [Fixed(3), Fixed(1)];
        assert_eq!(
            broadcast_all(&[f(&a), f(&b)]).unwrap(),
            Some(vec![p("batch"), Fixed(3), Fixed(4)])
        );
        assert!(broadcast_all(&[f(&[Fixed(2)]), f(&[Fixed(3)])]).is_err());
    }

    #[test]
    fn matmul_checks_inner_dimensions() {
        let a = [p("batch"), Fixed(8), Fixed(16)];
        let b = [Fixed(16), Fixed(4)];
        assert_eq!(
            matmul(&f(&a), &f(&b)).unwrap(),
            Some(vec![p("batch"), Fixed(8), Fixed(4)])
        );
        let err = matmul(&f(&a), &f(&[Fixed(15), Fixed(4)])).unwrap_err();
        assert!(err.to_string().contains("16 and 15"), "{err}");
        assert_eq!(
            matmul(&f(&[Fixed(3)]), &f(&[Fixed(3)])).unwrap(),
            Some(vec![])
        );
    }

    #[test]
    fn reshape_infers_minus_one_and_copies_zero() {
        let x = [p("batch"), Fixed(6), Fixed(4)];
        let target = Tensor::from_vec(&[3], vec![0i64, 3, -1]).unwrap();
        let shape = Fact {
            value: Some(&target),
            ..Default::default()
        };
        assert_eq!(
            reshape(&f(&x), &shape, false).unwrap(),
            Some(vec![p("batch"), Fixed(3), Dim::Unknown])
        );
        let x = [Fixed(2), Fixed(6), Fixed(4)];
        assert_eq!(
            reshape(&f(&x), &shape, false).unwrap(),
            Some(vec![Fixed(2), Fixed(3), Fixed(8)])
        );
        let bad = Tensor::from_vec(&[2], vec![5i64, -1]).unwrap();
        let bad = Fact {
            value: Some(&bad),
            ..Default::default()
        };
        assert!(reshape(&f(&x), &bad, false).is_err());
    }

    #[test]
    fn shape_of_static_input_is_a_value() {
        let x = [Fixed(2), Fixed(3), Fixed(5)];
        let got = shape_of(&f(&x), 1, None);
        assert_eq!(got.value.unwrap().to_i64_vec().unwrap(), vec![3, 5]);
        assert!(shape_of(&f(&[p("b"), Fixed(3)]), 0, None).value.is_none());
    }

    #[test]
    fn reduce_and_squeeze_follow_axes() {
        let x = [p("b"), Fixed(1), Fixed(7)];
        assert_eq!(
            reduce(&f(&x), &[-1], true).unwrap(),
            Some(vec![p("b"), Fixed(1), Fixed(1)])
        );
        assert_eq!(reduce(&f(&x), &[], false).unwrap(), Some(vec![]));
        assert_eq!(
            squeeze(&f(&x), Some(&[1])).unwrap(),
            Some(vec![p("b"), Fixed(7)])
        );
        assert!(squeeze(&f(&x), Some(&[2])).is_err());
        assert_eq!(
            unsqueeze(&f(&x), Some(&[0, -1])).unwrap(),
            Some(vec![Fixed(1), p("b"), Fixed(1), Fixed(7), Fixed(1)])
        );
    }

    #[test]
    fn slice_split_tile_pad() {
        let x = [p("b"), Fixed(10), Fixed(4)];
        assert_eq!(
            slice(
                &f(&x),
                &[1, -1],
                &[i64::MAX, 0],
                Some(&[1, 2]),
                Some(&[3, -1])
            )
            .unwrap(),
            Some(vec![p("b"), Fixed(3), Fixed(3)])
        );
        assert!(slice(&f(&x), &[0], &[1], None, Some(&[0])).is_err());
        assert_eq!(
            tile(&x, &[1, 2, 1]).unwrap(),
            vec![p("b"), Fixed(20), Fixed(4)]
        );
        assert_eq!(
            pad(&x, &[0, 1, -1, 0, 2, 0], None).unwrap(),
            vec![p("b"), Fixed(13), Fixed(3)]
        );
        assert!(pad(&x, &[0, -11], Some(&[1])).is_err());
    }
}
