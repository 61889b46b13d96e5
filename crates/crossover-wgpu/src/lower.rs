//! Lowering of one node to kernel dispatches, for the ops that have WGSL kernels.
//!
//! [`lower`] returns `Ok(false)` without side effects when this node cannot run on the
//! device as it stands (a non-f32 input, a parameter that lives only on the device, a
//! rank beyond what the kernels index); the run then places it on the host.

use crossover_core::op::conv::{ConvOp, Window};
use crossover_core::op::layout::{slice_len, slice_range, split_sizes, LayoutOp as L};
use crossover_core::op::nn::{NnOp, SoftmaxAxis};
use crossover_core::op::{ElementwiseOp as E, LinalgOp, ReduceOp as R};
use crossover_core::shapes::{infer, Fact};
use crossover_core::{invalid, DType, Dim, Node, Op, Result, Tensor, ValueId};
use crossover_kernels::wgsl::{self, binary as B, pool as PM, reduce as RC, unary as U};

use crate::exec::{DevVal, Run};

/// Up to this many rows a matmul runs one invocation per output (`matvec.wgsl`) instead
/// of 64x64 tiles that would be mostly padding.
const SMALL_M: usize = 4;

/// Highest rank the strided kernels (binary, copy, reduce) index.
const MAX_RANK: usize = 8;

fn unary_code(e: &E) -> Option<(u32, f32, f32)> {
    Some(match *e {
        E::Abs => (U::ABS, 0.0, 0.0),
        E::Neg => (U::NEG, 0.0, 0.0),
        E::Sqrt => (U::SQRT, 0.0, 0.0),
        E::Exp => (U::EXP, 0.0, 0.0),
        E::Log => (U::LOG, 0.0, 0.0),
        E::Erf => (U::ERF, 0.0, 0.0),
        E::Sin => (U::SIN, 0.0, 0.0),
        E::Cos => (U::COS, 0.0, 0.0),
        E::Tan => (U::TAN, 0.0, 0.0),
        E::Asin => (U::ASIN, 0.0, 0.0),
        E::Acos => (U::ACOS, 0.0, 0.0),
        E::Atan => (U::ATAN, 0.0, 0.0),
        E::Sinh => (U::SINH, 0.0, 0.0),
        E::Cosh => (U::COSH, 0.0, 0.0),
        E::Asinh => (U::ASINH, 0.0, 0.0),
        E::Acosh => (U::ACOSH, 0.0, 0.0),
        E::Atanh => (U::ATANH, 0.0, 0.0),
        E::Ceil => (U::CEIL, 0.0, 0.0),
        E::Floor => (U::FLOOR, 0.0, 0.0),
        E::Round => (U::ROUND, 0.0, 0.0),
        E::Sign => (U::SIGN, 0.0, 0.0),
        E::Reciprocal => (U::RECIPROCAL, 0.0, 0.0),
        E::Tanh => (U::TANH, 0.0, 0.0),
        E::Sigmoid => (U::SIGMOID, 0.0, 0.0),
        E::Relu => (U::RELU, 0.0, 0.0),
        E::LeakyRelu { alpha } => (U::LEAKY_RELU, alpha, 0.0),
        E::Elu { alpha } => (U::ELU, alpha, 0.0),
        E::Selu { alpha, gamma } => (U::SELU, alpha, gamma),
        E::Celu { alpha } => (U::CELU, alpha, 0.0),
        E::Gelu { tanh: false } => (U::GELU, 0.0, 0.0),
        E::Gelu { tanh: true } => (U::GELU_TANH, 0.0, 0.0),
        E::HardSigmoid { alpha, beta } => (U::HARD_SIGMOID, alpha, beta),
        E::HardSwish => (U::HARD_SWISH, 0.0, 0.0),
        E::Softplus => (U::SOFTPLUS, 0.0, 0.0),
        E::Softsign => (U::SOFTSIGN, 0.0, 0.0),
        E::Mish => (U::MISH, 0.0, 0.0),
        E::Shrink { bias, lambd } => (U::SHRINK, bias, lambd),
        E::ThresholdedRelu { alpha } => (U::THRESHOLDED_RELU, alpha, 0.0),
        E::Swish { alpha } => (U::SWISH, alpha, 0.0),
        _ => return None,
    })
}

fn binary_code(e: &E) -> Option<u32> {
    Some(match e {
        E::Add | E::Sum | E::Mean => B::ADD,
        E::Sub => B::SUB,
        E::Mul => B::MUL,
        E::Div => B::DIV,
        E::Pow => B::POW,
        E::Max => B::MAX,
        E::Min => B::MIN,
        E::PRelu => B::PRELU,
        E::Mod { fmod: true } => B::FMOD,
        _ => return None,
    })
}

fn reduce_code(r: &R) -> Option<u32> {
    Some(match r {
        R::ReduceSum { .. } => RC::SUM,
        R::ReduceMean { .. } => RC::MEAN,
        R::ReduceMax { .. } => RC::MAX,
        R::ReduceMin { .. } => RC::MIN,
        R::ReduceProd { .. } => RC::PROD,
        R::ReduceL1 { .. } => RC::L1,
        R::ReduceL2 { .. } => RC::L2,
        R::ReduceLogSum { .. } => RC::LOG_SUM,
        R::ReduceLogSumExp { .. } => RC::LOG_SUM_EXP,
        R::ReduceSumSquare { .. } => RC::SUM_SQUARE,
        _ => return None,
    })
}

/// Whether the op has a kernel at all; dtypes and shapes are checked per run.
pub(crate) fn has_kernel(node: &Node) -> bool {
    match &node.op {
        Op::Elementwise(e) => {
            unary_code(e).is_some()
                || binary_code(e).is_some()
                || matches!(e, E::Clip { .. } | E::Cast { to: DType::F32, .. })
        }
        Op::Linalg(LinalgOp::MatMul | LinalgOp::Gemm { .. }) => true,
        Op::Nn(n) => matches!(
            n,
            NnOp::Softmax { .. }
                | NnOp::LogSoftmax { .. }
                | NnOp::LayerNormalization { .. }
                | NnOp::RMSNormalization { .. }
                | NnOp::BatchNormalization {
                    training: false,
                    ..
                }
        ),
        Op::Conv(c) => matches!(
            c,
            ConvOp::Conv(_)
                | ConvOp::MaxPool { .. }
                | ConvOp::AveragePool { .. }
                | ConvOp::GlobalAveragePool
                | ConvOp::GlobalMaxPool
        ),
        Op::Layout(l) => matches!(
            l,
            L::Identity
                | L::Reshape { .. }
                | L::Flatten { .. }
                | L::Squeeze { .. }
                | L::Unsqueeze { .. }
                | L::Transpose { .. }
                | L::Slice { .. }
                | L::Concat { .. }
                | L::Split { .. }
                | L::Expand
                | L::Gather { .. }
                | L::Shape { .. }
                | L::Size
        ),
        Op::Reduce(r) => reduce_code(r).is_some(),
        _ => false,
    }
}

pub(crate) fn input(node: &Node, i: usize) -> Option<ValueId> {
    node.inputs.get(i).copied().flatten()
}

pub(crate) fn output(node: &Node, i: usize) -> Option<ValueId> {
    node.outputs.get(i).copied().flatten()
}

/// Only the first output is wanted (others absent).
fn single_output(node: &Node) -> bool {
    node.outputs.iter().skip(1).all(|o| o.is_none())
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

pub(crate) fn norm_axis(a: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let v = if a < 0 { a + r } else { a };
    if v < 0 || v >= r.max(1) {
        return Err(invalid!("axis {a} is out of range for rank {rank}"));
    }
    Ok(v as usize)
}

pub(crate) fn u(v: usize) -> Result<u32> {
    u32::try_from(v)
        .map_err(|_| invalid!("size {v} exceeds the 32-bit indexing of the wgpu kernels"))
}

pub(crate) fn f(v: f32) -> u32 {
    v.to_bits()
}

/// A scalar parameter held on the host (Clip bounds), `Err` when it is only on the device.
fn host_scalar(r: &Run, v: Option<ValueId>) -> std::result::Result<Option<f32>, ()> {
    match v {
        None => Ok(None),
        Some(v) => match r.host(v) {
            Some(t) => t
                .to_f64_vec()
                .ok()
                .and_then(|x| x.first().copied())
                .map(|x| Some(x as f32))
                .ok_or(()),
            None => Err(()),
        },
    }
}

fn host_ints(r: &Run, v: Option<ValueId>) -> std::result::Result<Option<Vec<i64>>, ()> {
    match v {
        None => Ok(None),
        Some(v) => match r.host(v) {
            Some(t) if t.dtype().is_int() => t.to_i64_vec().map(Some).map_err(|_| ()),
            _ => Err(()),
        },
    }
}

/// Output shapes from core's shape rules, given this run's concrete inputs.
fn inferred_shapes(r: &Run, node: &Node) -> Result<Option<Vec<Vec<usize>>>> {
    let dims: Vec<Option<Vec<Dim>>> = node
        .inputs
        .iter()
        .map(|v| {
            v.and_then(|v| r.shape(v))
                .map(|s| s.into_iter().map(Dim::Fixed).collect())
        })
        .collect();
    let facts: Vec<Fact> = node
        .inputs
        .iter()
        .zip(&dims)
        .map(|(v, d)| Fact {
            dtype: v.and_then(|v| r.dtype(v)),
            shape: d.as_deref(),
            value: v.and_then(|v| r.host(v)),
            present: v.is_some(),
        })
        .collect();
    let inferred = infer(node, &facts)?;
    Ok(inferred
        .into_iter()
        .map(|i| i.shape.and_then(|s| s.iter().map(Dim::fixed).collect()))
        .collect())
}

pub(crate) fn lower(r: &mut Run, node: &Node, fuse_relu: bool) -> Result<bool> {
    // Data inputs must be f32 (integer parameters are read on the host).
    match &node.op {
        Op::Elementwise(e) => elementwise(r, node, e),
        Op::Linalg(LinalgOp::MatMul) => matmul(r, node, fuse_relu),
        Op::Linalg(LinalgOp::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        }) => gemm(r, node, *alpha, *beta, *trans_a, *trans_b, fuse_relu),
        Op::Nn(NnOp::Softmax { axis }) => softmax(r, node, *axis, false),
        Op::Nn(NnOp::LogSoftmax { axis }) => softmax(r, node, *axis, true),
        Op::Nn(NnOp::LayerNormalization { axis, epsilon }) => {
            layernorm(r, node, *axis, *epsilon, false)
        }
        Op::Nn(NnOp::RMSNormalization { axis, epsilon }) => {
            layernorm(r, node, *axis, *epsilon, true)
        }
        Op::Nn(NnOp::BatchNormalization {
            epsilon,
            training: false,
            ..
        }) => batchnorm(r, node, *epsilon),
        Op::Conv(ConvOp::Conv(attrs)) => conv(r, node, &attrs.window, attrs.group),
        Op::Conv(ConvOp::MaxPool { pool, .. }) => {
            pool_op(r, node, Some((&pool.window, pool.ceil_mode)), PM::MAX)
        }
        Op::Conv(ConvOp::AveragePool {
            pool,
            count_include_pad,
        }) => {
            let mode = if *count_include_pad {
                PM::AVERAGE_WITH_PADDING
            } else {
                PM::AVERAGE
            };
            pool_op(r, node, Some((&pool.window, pool.ceil_mode)), mode)
        }
        Op::Conv(ConvOp::GlobalAveragePool) => pool_op(r, node, None, PM::AVERAGE),
        Op::Conv(ConvOp::GlobalMaxPool) => pool_op(r, node, None, PM::MAX),
        Op::Layout(l) => layout(r, node, l),
        Op::Reduce(op) => reduce(r, node, op),
        _ => Ok(false),
    }
}

pub(crate) fn all_f32(r: &Run, vs: &[Option<ValueId>]) -> bool {
    vs.iter().flatten().all(|&v| r.is_f32(v))
}

pub(crate) fn dev(r: &mut Run, v: ValueId) -> Result<DevVal> {
    r.dev(v)?.ok_or_else(|| invalid!("value {v:?} is not f32"))
}

fn unary(r: &mut Run, x: &DevVal, code: u32, a: f32, b: f32) -> Result<DevVal> {
    let y = r.output(x.shape.clone(), "unary")?;
    let n = x.len();
    if n > 0 {
        let grid = r.m.gpu.grid_1d(n, "unary")?;
        r.dispatch(
            &wgsl::UNARY,
            &[u(n)?, code, f(a), f(b)],
            &[&x.buf],
            &y.buf,
            grid,
        )?;
    }
    Ok(y)
}

pub(crate) fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(invalid!("shapes {a:?} and {b:?} do not broadcast together")),
        };
    }
    Ok(out)
}

/// Strides of `shape` read as broadcast into `out` (0 along broadcast axes).
pub(crate) fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let s = strides(shape);
    let off = out.len() - shape.len();
    (0..out.len())
        .map(|i| {
            if i < off || (shape[i - off] == 1 && out[i] != 1) {
                0
            } else {
                s[i - off]
            }
        })
        .collect()
}

/// Drops size-1 axes and merges neighbours that every operand walks contiguously, so the
/// strided kernels (binary, copy) decompose each index over fewer axes: integer division
/// is their main cost on software adapters.
fn coalesce(shape: &[usize], strides: &mut [Vec<i64>]) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::with_capacity(shape.len());
    let mut merged: Vec<Vec<i64>> = vec![Vec::with_capacity(shape.len()); strides.len()];
    for (d, &len) in shape.iter().enumerate() {
        if len == 1 {
            continue;
        }
        let joins = !out.is_empty()
            && strides
                .iter()
                .zip(&merged)
                .all(|(s, m)| m[m.len() - 1] == s[d] * len as i64);
        if joins {
            *out.last_mut().expect("not empty") *= len;
            for (s, m) in strides.iter().zip(merged.iter_mut()) {
                *m.last_mut().expect("not empty") = s[d];
            }
        } else {
            out.push(len);
            for (s, m) in strides.iter().zip(merged.iter_mut()) {
                m.push(s[d]);
            }
        }
    }
    for (s, m) in strides.iter_mut().zip(merged) {
        *s = m;
    }
    out
}

fn binary(r: &mut Run, a: &DevVal, b: &DevVal, code: u32) -> Result<DevVal> {
    let shape = broadcast(&a.shape, &b.shape)?;
    if shape.len() > MAX_RANK {
        return Err(invalid!(
            "rank {} exceeds the wgpu kernels' {MAX_RANK}",
            shape.len()
        ));
    }
    let y = r.output(shape.clone(), "binary")?;
    let n = y.len();
    if n > 0 {
        let wide = |s: Vec<usize>| s.into_iter().map(|x| x as i64).collect::<Vec<_>>();
        let mut st = [
            wide(broadcast_strides(&a.shape, &shape)),
            wide(broadcast_strides(&b.shape, &shape)),
        ];
        let dims = coalesce(&shape, &mut st);
        let mut w = vec![0u32; 28];
        w[0] = u(n)?;
        w[1] = code;
        w[2] = dims.len() as u32;
        for i in 0..dims.len() {
            w[4 + i] = u(dims[i])?;
            w[12 + i] = u(st[0][i] as usize)?;
            w[20 + i] = u(st[1][i] as usize)?;
        }
        let grid = r.m.gpu.grid_1d(n, "binary")?;
        r.dispatch(&wgsl::BINARY, &w, &[&a.buf, &b.buf], &y.buf, grid)?;
    }
    Ok(y)
}

fn elementwise(r: &mut Run, node: &Node, e: &E) -> Result<bool> {
    let Some(out) = output(node, 0) else {
        return Ok(true);
    };
    if let Some((code, a, b)) = unary_code(e) {
        let Some(x) = input(node, 0) else {
            return Ok(false);
        };
        if !r.is_f32(x) {
            return Ok(false);
        }
        let x = dev(r, x)?;
        let y = unary(r, &x, code, a, b)?;
        r.set_dev(out, y);
        return Ok(true);
    }
    if let E::Cast { to: DType::F32, .. } = e {
        // To f32 from the host (a mask, token types): converted while uploading.
        let Some(x) = input(node, 0) else {
            return Ok(false);
        };
        let y = match (r.host(x).cloned(), r.is_f32(x)) {
            (_, true) => {
                let d = dev(r, x)?;
                let shape = d.shape.clone();
                r.alias(&d, shape)
            }
            (Some(t), false) => {
                let Ok(c) = t.cast(DType::F32) else {
                    return Ok(false);
                };
                let data = crate::exec::f32_data(&c)?;
                r.upload_words(bytemuck::cast_slice(&data), c.shape().to_vec(), "cast")?
            }
            (None, false) => return Ok(false),
        };
        r.set_dev(out, y);
        return Ok(true);
    }
    if let E::Clip { min, max } = e {
        let Some(x) = input(node, 0) else {
            return Ok(false);
        };
        let (Ok(lo), Ok(hi)) = (
            host_scalar(r, input(node, 1)),
            host_scalar(r, input(node, 2)),
        ) else {
            return Ok(false);
        };
        if !r.is_f32(x) {
            return Ok(false);
        }
        let lo = lo.or(*min).unwrap_or(f32::NEG_INFINITY);
        let hi = hi.or(*max).unwrap_or(f32::INFINITY);
        let x = dev(r, x)?;
        let y = unary(r, &x, U::CLIP, lo, hi)?;
        r.set_dev(out, y);
        return Ok(true);
    }
    let Some(code) = binary_code(e) else {
        return Ok(false);
    };
    let ins: Vec<ValueId> = node.inputs.iter().flatten().copied().collect();
    if ins.is_empty() || !all_f32(r, &node.inputs) || ins.iter().any(|&v| r.shape(v).is_none()) {
        return Ok(false);
    }
    let variadic = matches!(e, E::Sum | E::Mean | E::Max | E::Min);
    if !variadic && ins.len() != 2 {
        return Ok(false);
    }
    // Check the whole chain broadcasts before dispatching anything.
    let mut shape = r.shape(ins[0]).expect("checked");
    for &v in &ins[1..] {
        shape = broadcast(&shape, &r.shape(v).expect("checked"))?;
    }
    if shape.len() > MAX_RANK {
        return Ok(false);
    }
    let first = dev(r, ins[0])?;
    let mut acc = if ins.len() == 1 {
        // One input: a copy (Sum, Max, Min, Mean of one tensor is the tensor).
        unary(r, &first, U::SCALE, 1.0, 0.0)?
    } else {
        let second = dev(r, ins[1])?;
        binary(r, &first, &second, code)?
    };
    for &v in ins.iter().skip(2) {
        let b = dev(r, v)?;
        let next = binary(r, &acc, &b, code)?;
        r.drop_temp(&acc);
        acc = next;
    }
    if matches!(e, E::Mean) && ins.len() > 1 {
        let scaled = unary(r, &acc, U::SCALE, 1.0 / ins.len() as f32, 0.0)?;
        r.drop_temp(&acc);
        acc = scaled;
    }
    r.set_dev(out, acc);
    Ok(true)
}

#[allow(clippy::too_many_arguments)]
fn dispatch_matmul(
    r: &mut Run,
    a: &DevVal,
    b: &DevVal,
    bias: Option<(&DevVal, [usize; 2], [usize; 3])>,
    (m, n, k): (usize, usize, usize),
    (trans_a, trans_b): (bool, bool),
    (alpha, beta): (f32, f32),
    batch: ([usize; 3], [usize; 3], [usize; 3]),
    relu: bool,
    out_shape: Vec<usize>,
) -> Result<DevVal> {
    let y = r.output(out_shape, "matmul")?;
    let count: usize = batch.0.iter().product();
    if y.len() == 0 {
        return Ok(y);
    }
    let max = r.m.gpu.limits.max_compute_workgroups_per_dimension as usize;
    if count > max || n.div_ceil(64) > max || m.div_ceil(64) > max {
        return Err(r.m.gpu.error(format!(
            "matmul of {count} x [{m}, {k}] x [{k}, {n}] exceeds the dispatch limit"
        )));
    }
    let mut w = vec![0u32; 25];
    w[0] = u(m)?;
    w[1] = u(n)?;
    w[2] = u(k)?;
    w[3] = trans_a as u32;
    w[4] = trans_b as u32;
    w[5] = bias.is_some() as u32;
    w[6] = relu as u32;
    w[7] = f(alpha);
    w[8] = f(beta);
    if let Some((_, rc, _)) = &bias {
        w[9] = u(rc[0])?;
        w[10] = u(rc[1])?;
    }
    for i in 0..3 {
        w[12 + i] = u(batch.0[i])?;
        w[15 + i] = u(batch.1[i])?;
        w[18 + i] = u(batch.2[i])?;
        if let Some((_, _, bb)) = &bias {
            w[21 + i] = u(bb[i])?;
        }
    }
    let bias_buf = match &bias {
        Some((d, _, _)) => d.buf.clone(),
        None => r.m.gpu.dummy.clone(),
    };
    if m <= SMALL_M {
        let grid = r.m.gpu.grid_1d(y.len(), "matmul")?;
        r.dispatch(
            &wgsl::MATVEC,
            &w,
            &[&a.buf, &b.buf, &bias_buf],
            &y.buf,
            grid,
        )?;
    } else {
        // Software adapters take the kernel without workgroup memory when its vec4 loads
        // are aligned (see matmul_vec4.wgsl); hardware keeps the tiled kernel.
        let aligned = k > 0 && k % 4 == 0 && (!trans_a || m % 4 == 0) && (trans_b || n % 4 == 0);
        let shader = if r.m.gpu.desc.software && aligned {
            &wgsl::MATMUL_VEC4
        } else {
            &wgsl::MATMUL
        };
        let grid = (n.div_ceil(64) as u32, m.div_ceil(64) as u32, count as u32);
        r.dispatch(shader, &w, &[&a.buf, &b.buf, &bias_buf], &y.buf, grid)?;
    }
    Ok(y)
}

fn matmul(r: &mut Run, node: &Node, relu: bool) -> Result<bool> {
    let (Some(av), Some(bv), Some(out)) = (input(node, 0), input(node, 1), output(node, 0)) else {
        return Ok(false);
    };
    if !all_f32(r, &node.inputs) {
        return Ok(false);
    }
    let (Some(sa), Some(sb)) = (r.shape(av), r.shape(bv)) else {
        return Ok(false);
    };
    if sa.is_empty() || sb.is_empty() {
        return Err(invalid!(
            "MatMul needs inputs of rank 1 or more, got {sa:?} and {sb:?}"
        ));
    }
    let mut a2 = sa.clone();
    if sa.len() == 1 {
        a2.insert(0, 1);
    }
    let mut b2 = sb.clone();
    if sb.len() == 1 {
        b2.push(1);
    }
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != k2 {
        return Err(invalid!("MatMul inner dimensions differ: {sa:?} x {sb:?}"));
    }
    let ba = &a2[..a2.len() - 2];
    let bb = &b2[..b2.len() - 2];
    let batch = broadcast(ba, bb)?;
    if batch.len() > 3 {
        return Ok(false);
    }
    let mut shape3 = [1usize; 3];
    let off = 3 - batch.len();
    shape3[off..].copy_from_slice(&batch);
    let stride_of = |b: &[usize], mat: usize| -> [usize; 3] {
        let st = broadcast_strides(b, &batch);
        let mut s = [0usize; 3];
        for i in 0..batch.len() {
            s[off + i] = st[i] * mat;
        }
        s
    };
    let sa3 = stride_of(ba, m * k);
    let sb3 = stride_of(bb, k * n);
    let mut out_shape = batch.clone();
    if sa.len() > 1 {
        out_shape.push(m);
    }
    if sb.len() > 1 {
        out_shape.push(n);
    }
    let a = dev(r, av)?;
    let b = dev(r, bv)?;
    let y = dispatch_matmul(
        r,
        &a,
        &b,
        None,
        (m, n, k),
        (false, false),
        (1.0, 0.0),
        (shape3, sa3, sb3),
        relu,
        out_shape,
    )?;
    r.set_dev(out, y);
    Ok(true)
}

fn gemm(
    r: &mut Run,
    node: &Node,
    alpha: f32,
    beta: f32,
    trans_a: bool,
    trans_b: bool,
    relu: bool,
) -> Result<bool> {
    let (Some(av), Some(bv), Some(out)) = (input(node, 0), input(node, 1), output(node, 0)) else {
        return Ok(false);
    };
    if !all_f32(r, &node.inputs) {
        return Ok(false);
    }
    let (Some(sa), Some(sb)) = (r.shape(av), r.shape(bv)) else {
        return Ok(false);
    };
    if sa.len() != 2 || sb.len() != 2 {
        return Err(invalid!("Gemm needs 2-D inputs, got {sa:?} and {sb:?}"));
    }
    let (m, k) = if trans_a {
        (sa[1], sa[0])
    } else {
        (sa[0], sa[1])
    };
    let (k2, n) = if trans_b {
        (sb[1], sb[0])
    } else {
        (sb[0], sb[1])
    };
    if k != k2 {
        return Err(invalid!(
            "Gemm inner dimensions differ: {sa:?} x {sb:?} (transA {trans_a}, transB {trans_b})"
        ));
    }
    let c = input(node, 2);
    let c_strides = match c.and_then(|c| r.shape(c)) {
        None => None,
        Some(sc) => {
            if sc.len() > 2 {
                return Err(invalid!(
                    "Gemm C of shape {sc:?} is not broadcastable to [{m}, {n}]"
                ));
            }
            broadcast(&sc, &[m, n])
                .ok()
                .filter(|s| s == &[m, n])
                .ok_or_else(|| {
                    invalid!("Gemm C of shape {sc:?} is not broadcastable to [{m}, {n}]")
                })?;
            let st = broadcast_strides(&sc, &[m, n]);
            Some([st[0], st[1]])
        }
    };
    let a = dev(r, av)?;
    let b = dev(r, bv)?;
    let cd = match c {
        Some(c) if c_strides.is_some() => Some(dev(r, c)?),
        _ => None,
    };
    let bias = cd
        .as_ref()
        .map(|d| (d, c_strides.expect("set with C"), [0usize; 3]));
    let y = dispatch_matmul(
        r,
        &a,
        &b,
        bias,
        (m, n, k),
        (trans_a, trans_b),
        (alpha, beta),
        ([1; 3], [0; 3], [0; 3]),
        relu,
        vec![m, n],
    )?;
    r.set_dev(out, y);
    Ok(true)
}

fn softmax(r: &mut Run, node: &Node, axis: SoftmaxAxis, log: bool) -> Result<bool> {
    let (Some(xv), Some(out)) = (input(node, 0), output(node, 0)) else {
        return Ok(false);
    };
    if !r.is_f32(xv) {
        return Ok(false);
    }
    let Some(shape) = r.shape(xv) else {
        return Ok(false);
    };
    let rank = shape.len();
    let (outer, n, inner) = match axis {
        SoftmaxAxis::Single(a) => {
            if rank == 0 {
                return Ok(false);
            }
            let a = norm_axis(a, rank)?;
            (
                shape[..a].iter().product::<usize>(),
                shape[a],
                shape[a + 1..].iter().product::<usize>(),
            )
        }
        SoftmaxAxis::Coerce2d(a) => {
            let a = if a < 0 { a + rank as i64 } else { a };
            if a < 0 || a as usize > rank {
                return Err(invalid!("axis {a} is out of range for rank {rank}"));
            }
            let a = a as usize;
            (
                shape[..a].iter().product::<usize>(),
                shape[a..].iter().product::<usize>(),
                1,
            )
        }
    };
    let x = dev(r, xv)?;
    let y = r.output(shape, "softmax")?;
    let rows = outer * inner;
    if rows > 0 && n > 0 {
        let grid = r.m.gpu.grid_rows(rows, "softmax")?;
        r.dispatch(
            &wgsl::SOFTMAX,
            &[u(rows)?, u(n)?, u(inner)?, log as u32],
            &[&x.buf],
            &y.buf,
            grid,
        )?;
    }
    r.set_dev(out, y);
    Ok(true)
}

fn layernorm(r: &mut Run, node: &Node, axis: i64, eps: f32, rms: bool) -> Result<bool> {
    let (Some(xv), Some(sv), Some(out)) = (input(node, 0), input(node, 1), output(node, 0)) else {
        return Ok(false);
    };
    let bv = if rms { None } else { input(node, 2) };
    if !single_output(node) || !all_f32(r, &node.inputs) {
        return Ok(false);
    }
    let Some(shape) = r.shape(xv) else {
        return Ok(false);
    };
    if shape.is_empty() {
        return Ok(false);
    }
    let a = norm_axis(axis, shape.len())?;
    let n: usize = shape[a..].iter().product();
    let rows: usize = shape[..a].iter().product();
    // Scale and bias must cover the normalised axes exactly (broadcasting ones go to the host).
    let full = |v: Option<ValueId>| {
        v.is_none_or(|v| r.shape(v).is_some_and(|s| s.iter().product::<usize>() == n))
    };
    if !full(Some(sv)) || !full(bv) {
        return Ok(false);
    }
    let x = dev(r, xv)?;
    let s = dev(r, sv)?;
    let b = match bv {
        Some(b) => Some(dev(r, b)?),
        None => None,
    };
    let y = r.output(shape, "layernorm")?;
    if rows > 0 && n > 0 {
        let grid = r.m.gpu.grid_rows(rows, "layernorm")?;
        let bias = b.as_ref().map_or(r.m.gpu.dummy.clone(), |b| b.buf.clone());
        r.dispatch(
            &wgsl::LAYERNORM,
            &[u(rows)?, u(n)?, f(eps), b.is_some() as u32, rms as u32],
            &[&x.buf, &s.buf, &bias],
            &y.buf,
            grid,
        )?;
    }
    r.set_dev(out, y);
    Ok(true)
}

fn host_f32(r: &Run, v: Option<ValueId>) -> Option<Vec<f32>> {
    let t = r.host(v?)?;
    if t.dtype() != DType::F32 {
        return None;
    }
    Some(crate::exec::f32_data(t).ok()?.into_owned())
}

fn batchnorm(r: &mut Run, node: &Node, eps: f32) -> Result<bool> {
    let (Some(xv), Some(out)) = (input(node, 0), output(node, 0)) else {
        return Ok(false);
    };
    if !single_output(node) || !r.is_f32(xv) {
        return Ok(false);
    }
    let Some(shape) = r.shape(xv) else {
        return Ok(false);
    };
    let (Some(scale), Some(bias), Some(mean), Some(var)) = (
        host_f32(r, input(node, 1)),
        host_f32(r, input(node, 2)),
        host_f32(r, input(node, 3)),
        host_f32(r, input(node, 4)),
    ) else {
        return Ok(false);
    };
    if shape.len() < 2 {
        return Ok(false);
    }
    let c = shape[1];
    if [&scale, &bias, &mean, &var].iter().any(|v| v.len() != c) {
        return Err(invalid!(
            "BatchNormalization statistics must have {c} values (the channels of {shape:?})"
        ));
    }
    let mul: Vec<f32> = (0..c).map(|i| scale[i] / (var[i] + eps).sqrt()).collect();
    let add: Vec<f32> = (0..c).map(|i| bias[i] - mean[i] * mul[i]).collect();
    let x = dev(r, xv)?;
    let md = r.upload_words(bytemuck::cast_slice(&mul), vec![c], "batchnorm scale")?;
    let ad = r.upload_words(bytemuck::cast_slice(&add), vec![c], "batchnorm shift")?;
    let inner: usize = shape[2..].iter().product();
    let y = r.output(shape, "batchnorm")?;
    let n = y.len();
    if n > 0 {
        let grid = r.m.gpu.grid_1d(n, "batchnorm")?;
        r.dispatch(
            &wgsl::CHANNEL,
            &[u(n)?, u(c)?, u(inner)?],
            &[&x.buf, &md.buf, &ad.buf],
            &y.buf,
            grid,
        )?;
    }
    r.set_dev(out, y);
    Ok(true)
}

fn conv(r: &mut Run, node: &Node, window: &Window, group: i64) -> Result<bool> {
    let (Some(xv), Some(wv), Some(out)) = (input(node, 0), input(node, 1), output(node, 0)) else {
        return Ok(false);
    };
    if !all_f32(r, &node.inputs) {
        return Ok(false);
    }
    let (Some(xs), Some(ws)) = (r.shape(xv), r.shape(wv)) else {
        return Ok(false);
    };
    if !(xs.len() == 3 || xs.len() == 4) || ws.len() != xs.len() {
        return Ok(false);
    }
    let g = group as usize;
    let (nb, c, m) = (xs[0], xs[1], ws[0]);
    if g == 0 || c != ws[1] * g || m % g != 0 {
        return Err(invalid!(
            "Conv: input {xs:?} and weight {ws:?} do not agree with group {group}"
        ));
    }
    let rw = window.resolve(&xs[2..], &ws[2..], false)?;
    let two = |v: &[usize], d: usize| {
        if v.len() == 2 {
            v[d]
        } else if d == 0 {
            1
        } else {
            v[0]
        }
    };
    let twoi = |v: &[isize], d: usize| {
        if v.len() == 2 {
            v[d]
        } else if d == 0 {
            0
        } else {
            v[0]
        }
    };
    let (h, w) = (two(&xs[2..], 0), two(&xs[2..], 1));
    let (kh, kw) = (two(&ws[2..], 0), two(&ws[2..], 1));
    let (oh, ow) = (two(&rw.grid, 0), two(&rw.grid, 1));
    let mut out_shape = vec![nb, m];
    out_shape.extend(&rw.grid);
    let bias = match input(node, 2) {
        Some(b) => {
            if r.shape(b).map(|s| s.iter().product::<usize>()) != Some(m) {
                return Err(invalid!("Conv bias must have {m} values"));
            }
            Some(dev(r, b)?)
        }
        None => None,
    };
    let x = dev(r, xv)?;
    let wt = dev(r, wv)?;
    let y = r.output(out_shape, "conv")?;
    let total = y.len();
    if total > 0 {
        let words = [
            u(nb)?,
            u(c)?,
            u(h)?,
            u(w)?,
            u(m)?,
            u(oh)?,
            u(ow)?,
            u(kh)?,
            u(kw)?,
            u(two(&rw.strides, 0))?,
            u(two(&rw.strides, 1))?,
            twoi(&rw.pad_begin, 0) as i32 as u32,
            twoi(&rw.pad_begin, 1) as i32 as u32,
            u(two(&rw.dilations, 0))?,
            u(two(&rw.dilations, 1))?,
            u(g)?,
            bias.is_some() as u32,
            u(total)?,
        ];
        let bb = bias
            .as_ref()
            .map_or(r.m.gpu.dummy.clone(), |b| b.buf.clone());
        let grid = r.m.gpu.grid_1d(total, "conv")?;
        r.dispatch(&wgsl::CONV, &words, &[&x.buf, &wt.buf, &bb], &y.buf, grid)?;
    }
    r.set_dev(out, y);
    Ok(true)
}

fn pool_op(r: &mut Run, node: &Node, window: Option<(&Window, bool)>, mode: u32) -> Result<bool> {
    let (Some(xv), Some(out)) = (input(node, 0), output(node, 0)) else {
        return Ok(false);
    };
    if !single_output(node) || !r.is_f32(xv) {
        return Ok(false);
    }
    let Some(xs) = r.shape(xv) else {
        return Ok(false);
    };
    if !(xs.len() == 3 || xs.len() == 4) {
        return Ok(false);
    }
    let spatial = &xs[2..];
    let rw = match window {
        Some((w, ceil)) => {
            let kernel: Vec<usize> = w
                .kernel_shape
                .as_deref()
                .unwrap_or(&[])
                .iter()
                .map(|&k| usize::try_from(k).map_err(|_| invalid!("kernel_shape {k} is negative")))
                .collect::<Result<_>>()?;
            let rw = w.resolve(spatial, &kernel, ceil)?;
            (kernel, rw)
        }
        None => (
            spatial.to_vec(),
            Window::default().resolve(spatial, spatial, false)?,
        ),
    };
    let (kernel, rw) = rw;
    let two = |v: &[usize], d: usize| {
        if v.len() == 2 {
            v[d]
        } else if d == 0 {
            1
        } else {
            v[0]
        }
    };
    let twoi = |v: &[isize], d: usize| {
        if v.len() == 2 {
            v[d]
        } else if d == 0 {
            0
        } else {
            v[0]
        }
    };
    let x = dev(r, xv)?;
    let mut out_shape = xs[..2].to_vec();
    out_shape.extend(&rw.grid);
    let y = r.output(out_shape, "pool")?;
    let total = y.len();
    if total > 0 {
        let words = [
            u(xs[0] * xs[1])?,
            u(two(spatial, 0))?,
            u(two(spatial, 1))?,
            u(two(&rw.grid, 0))?,
            u(two(&rw.grid, 1))?,
            u(two(&kernel, 0))?,
            u(two(&kernel, 1))?,
            u(two(&rw.strides, 0))?,
            u(two(&rw.strides, 1))?,
            twoi(&rw.pad_begin, 0) as i32 as u32,
            twoi(&rw.pad_begin, 1) as i32 as u32,
            u(two(&rw.dilations, 0))?,
            u(two(&rw.dilations, 1))?,
            mode,
            u(total)?,
            twoi(&rw.pad_end, 0) as i32 as u32,
            twoi(&rw.pad_end, 1) as i32 as u32,
        ];
        let grid = r.m.gpu.grid_1d(total, "pool")?;
        r.dispatch(&wgsl::POOL, &words, &[&x.buf], &y.buf, grid)?;
    }
    r.set_dev(out, y);
    Ok(true)
}

/// One strided region copy (see `copy.wgsl`).
#[allow(clippy::too_many_arguments)]
fn copy(
    r: &mut Run,
    x: &DevVal,
    y: &DevVal,
    region: &[usize],
    in_off: i64,
    in_strides: &[i64],
    out_off: usize,
    out_strides: &[usize],
) -> Result<()> {
    let n: usize = region.iter().product();
    if n == 0 {
        return Ok(());
    }
    let mut st = [
        in_strides.to_vec(),
        out_strides.iter().map(|&s| s as i64).collect(),
    ];
    let dims = coalesce(region, &mut st);
    let mut w = vec![0u32; 28];
    w[0] = u(n)?;
    w[1] = dims.len() as u32;
    w[2] = i32::try_from(in_off).map_err(|_| invalid!("offset {in_off} exceeds 32 bits"))? as u32;
    w[3] = u(out_off)?;
    for i in 0..dims.len() {
        w[4 + i] = u(dims[i])?;
        w[12 + i] = i32::try_from(st[0][i]).map_err(|_| invalid!("stride exceeds 32 bits"))? as u32;
        w[20 + i] = u(st[1][i] as usize)?;
    }
    let grid = r.m.gpu.grid_1d(n, "copy")?;
    r.dispatch(&wgsl::COPY, &w, &[&x.buf], &y.buf, grid)
}

fn layout(r: &mut Run, node: &Node, op: &L) -> Result<bool> {
    let Some(xv) = input(node, 0) else {
        return Ok(false);
    };
    let Some(xs) = r.shape(xv) else {
        return Ok(false);
    };
    // Shape and Size read only the shape: no data moves.
    match op {
        L::Shape { start, end } => {
            let rank = xs.len() as i64;
            let clampi = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
            let s = clampi(*start);
            let e = clampi(end.unwrap_or(rank)).max(s);
            let dims: Vec<i64> = xs[s..e].iter().map(|&d| d as i64).collect();
            if let Some(o) = output(node, 0) {
                r.set_host(o, Tensor::from_vec(&[dims.len()], dims)?);
            }
            return Ok(true);
        }
        L::Size => {
            if let Some(o) = output(node, 0) {
                r.set_host(o, Tensor::scalar(xs.iter().product::<usize>() as i64));
            }
            return Ok(true);
        }
        _ => {}
    }
    if xs.len() > MAX_RANK {
        return Ok(false);
    }
    let data_inputs: &[Option<ValueId>] = match op {
        L::Concat { .. } => &node.inputs,
        _ => &node.inputs[..1],
    };
    if !all_f32(r, data_inputs) {
        return Ok(false);
    }
    // Integer parameters (shapes, axes, starts, indices) must be on the host.
    for v in node.inputs.iter().skip(1).flatten() {
        if !matches!(op, L::Concat { .. }) && r.host(*v).is_none() {
            return Ok(false);
        }
    }
    let Some(shapes) = inferred_shapes(r, node)? else {
        return Ok(false);
    };
    let Some(out_shape) = shapes.first().cloned() else {
        return Ok(false);
    };
    if out_shape.len() > MAX_RANK {
        return Ok(false);
    }
    match op {
        L::Identity
        | L::Reshape { .. }
        | L::Flatten { .. }
        | L::Squeeze { .. }
        | L::Unsqueeze { .. } => {
            if out_shape.iter().product::<usize>() != xs.iter().product::<usize>() {
                return Err(invalid!("cannot view {xs:?} as {out_shape:?}"));
            }
            let x = dev(r, xv)?;
            let y = r.alias(&x, out_shape);
            if let Some(o) = output(node, 0) {
                r.set_dev(o, y);
            }
            Ok(true)
        }
        L::Transpose { perm } => {
            let rank = xs.len();
            let perm: Vec<usize> = match perm {
                Some(p) => p
                    .iter()
                    .map(|&a| norm_axis(a, rank))
                    .collect::<Result<_>>()?,
                None => (0..rank).rev().collect(),
            };
            let st = strides(&xs);
            let in_strides: Vec<i64> = perm.iter().map(|&p| st[p] as i64).collect();
            let x = dev(r, xv)?;
            let y = r.output(out_shape.clone(), "transpose")?;
            copy(
                r,
                &x,
                &y,
                &out_shape,
                0,
                &in_strides,
                0,
                &strides(&out_shape),
            )?;
            if let Some(o) = output(node, 0) {
                r.set_dev(o, y);
            }
            Ok(true)
        }
        L::Slice { starts, ends, axes } => {
            let rank = xs.len();
            let (Ok(s_in), Ok(e_in), Ok(a_in), Ok(st_in)) = (
                host_ints(r, input(node, 1)),
                host_ints(r, input(node, 2)),
                host_ints(r, input(node, 3)),
                host_ints(r, input(node, 4)),
            ) else {
                return Ok(false);
            };
            let (Some(starts), Some(ends)) = (starts.clone().or(s_in), ends.clone().or(e_in))
            else {
                return Ok(false);
            };
            let axes = axes
                .clone()
                .or(a_in)
                .unwrap_or_else(|| (0..starts.len() as i64).collect());
            let steps = st_in.unwrap_or_else(|| vec![1; starts.len()]);
            let st = strides(&xs);
            let mut in_strides: Vec<i64> = st.iter().map(|&s| s as i64).collect();
            let mut region = xs.clone();
            let mut off = 0i64;
            for i in 0..starts
                .len()
                .min(ends.len())
                .min(axes.len())
                .min(steps.len())
            {
                let a = norm_axis(axes[i], rank)?;
                let step = steps[i];
                if step == 0 {
                    return Err(invalid!("Slice step 0 on axis {a}"));
                }
                let (lo, hi) = slice_range(xs[a] as i64, starts[i], ends[i], step);
                let len = slice_len(lo, hi, step);
                region[a] = len;
                let first = if step > 0 { lo } else { hi - 1 };
                if len > 0 {
                    off += first * st[a] as i64;
                }
                in_strides[a] = step * st[a] as i64;
            }
            if region != out_shape {
                return Ok(false);
            }
            let x = dev(r, xv)?;
            let y = r.output(out_shape.clone(), "slice")?;
            copy(
                r,
                &x,
                &y,
                &region,
                off,
                &in_strides,
                0,
                &strides(&out_shape),
            )?;
            if let Some(o) = output(node, 0) {
                r.set_dev(o, y);
            }
            Ok(true)
        }
        L::Concat { axis } => {
            let ins: Vec<ValueId> = node.inputs.iter().flatten().copied().collect();
            let a = norm_axis(*axis, out_shape.len())?;
            let ost = strides(&out_shape);
            let mut parts = Vec::new();
            for &v in &ins {
                let Some(s) = r.shape(v) else {
                    return Ok(false);
                };
                parts.push((v, s));
            }
            let y = r.output(out_shape.clone(), "concat")?;
            let mut at = 0usize;
            for (v, s) in parts {
                let x = dev(r, v)?;
                let is: Vec<i64> = strides(&s).iter().map(|&x| x as i64).collect();
                copy(r, &x, &y, &s, 0, &is, at * ost[a], &ost)?;
                at += s[a];
            }
            if let Some(o) = output(node, 0) {
                r.set_dev(o, y);
            }
            Ok(true)
        }
        L::Split {
            axis,
            split,
            num_outputs,
        } => {
            let a = norm_axis(*axis, xs.len())?;
            let Ok(split_in) = host_ints(r, input(node, 1)) else {
                return Ok(false);
            };
            let split = split.clone().or(split_in);
            let count = if *num_outputs > 0 {
                *num_outputs
            } else {
                node.outputs.len()
            };
            let sizes = split_sizes(xs[a], split.as_deref(), count)?;
            if sizes.len() != node.outputs.len() {
                return Ok(false);
            }
            let st = strides(&xs);
            let is: Vec<i64> = st.iter().map(|&s| s as i64).collect();
            let x = dev(r, xv)?;
            let mut at = 0usize;
            for (i, &len) in sizes.iter().enumerate() {
                let mut region = xs.clone();
                region[a] = len;
                if let Some(o) = output(node, i) {
                    let y = r.output(region.clone(), "split")?;
                    copy(
                        r,
                        &x,
                        &y,
                        &region,
                        (at * st[a]) as i64,
                        &is,
                        0,
                        &strides(&region),
                    )?;
                    r.set_dev(o, y);
                }
                at += len;
            }
            Ok(true)
        }
        L::Expand => {
            let bs: Vec<i64> = broadcast_strides(&xs, &out_shape)
                .iter()
                .map(|&s| s as i64)
                .collect();
            let x = dev(r, xv)?;
            let y = r.output(out_shape.clone(), "expand")?;
            copy(r, &x, &y, &out_shape, 0, &bs, 0, &strides(&out_shape))?;
            if let Some(o) = output(node, 0) {
                r.set_dev(o, y);
            }
            Ok(true)
        }
        L::Gather { axis } => {
            let Some(iv) = input(node, 1) else {
                return Ok(false);
            };
            let Ok(Some(idx)) = host_ints(r, Some(iv)) else {
                return Ok(false);
            };
            let ishape = r.shape(iv).unwrap_or_default();
            if xs.is_empty() {
                return Ok(false);
            }
            let a = norm_axis(*axis, xs.len())?;
            let d = xs[a] as i64;
            let fixed: Vec<u32> = idx
                .iter()
                .map(|&i| {
                    let j = if i < 0 { i + d } else { i };
                    if j < 0 || j >= d {
                        Err(invalid!(
                            "Gather index {i} is out of range for axis {a} of size {d}"
                        ))
                    } else {
                        Ok(j as u32)
                    }
                })
                .collect::<Result<_>>()?;
            let mut shape = xs[..a].to_vec();
            shape.extend(&ishape);
            shape.extend(&xs[a + 1..]);
            let inner: usize = xs[a + 1..].iter().product();
            let x = dev(r, xv)?;
            let id = r.upload_words(bytemuck::cast_slice(&fixed), ishape, "gather indices")?;
            let y = r.output(shape, "gather")?;
            let n = y.len();
            if n > 0 {
                let grid = r.m.gpu.grid_1d(n, "gather")?;
                r.dispatch(
                    &wgsl::GATHER,
                    &[u(n)?, u(xs[a])?, u(inner)?, u(fixed.len())?],
                    &[&x.buf, &id.buf],
                    &y.buf,
                    grid,
                )?;
            }
            if let Some(o) = output(node, 0) {
                r.set_dev(o, y);
            }
            Ok(true)
        }
        _ => Ok(false),
    }
}

fn reduce(r: &mut Run, node: &Node, op: &R) -> Result<bool> {
    let (Some(code), Some(red)) = (reduce_code(op), op.reduction()) else {
        return Ok(false);
    };
    let (Some(xv), Some(out)) = (input(node, 0), output(node, 0)) else {
        return Ok(false);
    };
    if !r.is_f32(xv) {
        return Ok(false);
    }
    let Some(xs) = r.shape(xv) else {
        return Ok(false);
    };
    if xs.len() > MAX_RANK {
        return Ok(false);
    }
    let Ok(axes_in) = host_ints(r, input(node, 1)) else {
        return Ok(false);
    };
    let axes: Option<Vec<i64>> = red.axes.map(|a| a.to_vec()).or(axes_in);
    let rank = xs.len();
    let mut reduced = vec![false; rank];
    match axes.as_deref() {
        None | Some([]) if red.noop_with_empty_axes => {
            // Identity: a copy through the unary kernel keeps ownership simple.
            let x = dev(r, xv)?;
            let y = unary(r, &x, U::SCALE, 1.0, 0.0)?;
            r.set_dev(out, y);
            return Ok(true);
        }
        None | Some([]) => reduced.iter_mut().for_each(|b| *b = true),
        Some(list) => {
            for &a in list {
                reduced[norm_axis(a, rank)?] = true;
            }
        }
    }
    let st = strides(&xs);
    let mut kshape = Vec::new();
    let mut kstr = Vec::new();
    let mut rshape = Vec::new();
    let mut rstr = Vec::new();
    let mut out_shape = Vec::new();
    for d in 0..rank {
        if reduced[d] {
            rshape.push(xs[d]);
            rstr.push(st[d]);
            if red.keep_dims {
                out_shape.push(1);
            }
        } else {
            kshape.push(xs[d]);
            kstr.push(st[d]);
            out_shape.push(xs[d]);
        }
    }
    let x = dev(r, xv)?;
    let y = r.output(out_shape, "reduce")?;
    let n = y.len();
    if n > 0 {
        let mut w = vec![0u32; 40];
        w[0] = u(n)?;
        w[1] = code;
        w[2] = kshape.len() as u32;
        w[3] = rshape.len() as u32;
        w[4] = u(rshape.iter().product())?;
        for i in 0..kshape.len() {
            w[8 + i] = u(kshape[i])?;
            w[16 + i] = u(kstr[i])?;
        }
        for i in 0..rshape.len() {
            w[24 + i] = u(rshape[i])?;
            w[32 + i] = u(rstr[i])?;
        }
        let grid = r.m.gpu.grid_1d(n, "reduce")?;
        r.dispatch(&wgsl::REDUCE, &w, &[&x.buf], &y.buf, grid)?;
    }
    r.set_dev(out, y);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::coalesce;

    #[test]
    fn coalesce_merges_only_what_every_operand_walks_contiguously() {
        // [1, 128, 384] + [384]: the batch axis goes, the bias keeps its broadcast axis.
        let mut st = [vec![49152, 384, 1], vec![0, 0, 1]];
        assert_eq!(coalesce(&[1, 128, 384], &mut st), vec![128, 384]);
        assert_eq!(st, [vec![384, 1], vec![0, 1]]);
        // Same shapes: one axis.
        let mut st = [vec![12, 4, 1], vec![12, 4, 1]];
        assert_eq!(coalesce(&[2, 3, 4], &mut st), vec![24]);
        assert_eq!(st, [vec![1], vec![1]]);
        // A transpose read keeps its axes; all-ones collapses to rank 0.
        let mut st = [vec![1, 3], vec![2, 1]];
        assert_eq!(coalesce(&[3, 2], &mut st), vec![3, 2]);
        let mut st = [vec![1, 1], vec![1, 1]];
        assert_eq!(coalesce(&[1, 1], &mut st), Vec::<usize>::new());
    }
}
