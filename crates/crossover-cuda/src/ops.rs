//! The device side of each op: shapes and parameters worked out on the host, one or a
//! few kernel launches. `Ok(None)` sends the node to the host for this run (its shapes
//! fall outside what the kernel handles).

use std::ffi::c_void;

use crossover_core::op::{
    layout::{slice_len, slice_range},
    ConvOp, ElementwiseOp as E, LayoutOp as L, LinalgOp, NnOp, ReduceOp,
};
use crossover_core::{invalid, DType, Node, Op, Result, Tensor};
use crossover_kernels::cuda::launch::{ATTENTION_MAX_HEAD, GEMM_MMA_THREADS, GEMM_SIMT_THREADS};
use crossover_kernels::cuda::{BinaryOp, ReduceKind, UnaryOp};

use crate::exec::{DevVal, Run, Val};
use crate::launch::*;
use crate::plan::{cast_kernel, softmax_rows};

type Out = Result<Option<Vec<Val>>>;

fn p<T>(x: &mut T) -> *mut c_void {
    x as *mut T as *mut c_void
}

fn norm_axis(axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r.max(1) {
        return Err(invalid!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(a as usize)
}

fn ints(t: Option<Tensor>) -> Result<Option<Vec<i64>>> {
    t.map(|t| t.to_i64_vec()).transpose()
}

impl Run<'_> {
    pub(crate) fn device_node(&mut self, node: &Node) -> Out {
        match &node.op {
            Op::Elementwise(e) => self.elementwise(node, e),
            Op::Linalg(LinalgOp::MatMul) => self.matmul(node),
            Op::Linalg(LinalgOp::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            }) => self.gemm(node, *alpha, *beta, *trans_a, *trans_b),
            Op::Nn(NnOp::Softmax { axis }) => self.softmax(node, *axis, false),
            Op::Nn(NnOp::LogSoftmax { axis }) => self.softmax(node, *axis, true),
            Op::Nn(NnOp::LayerNormalization { axis, epsilon }) => {
                self.layernorm(node, *axis, *epsilon)
            }
            Op::Nn(NnOp::BatchNormalization { epsilon, .. }) => self.batchnorm(node, *epsilon),
            Op::Nn(NnOp::Attention(a)) => self.attention(node, a.q_num_heads, a.scale),
            Op::Conv(ConvOp::Conv(c)) => self.conv(node, c),
            Op::Conv(ConvOp::MaxPool { pool, .. }) => self.pool(node, pool, true, false),
            Op::Conv(ConvOp::AveragePool {
                pool,
                count_include_pad,
            }) => self.pool(node, pool, false, *count_include_pad),
            Op::Conv(ConvOp::GlobalAveragePool) => self.global_pool(node, ReduceKind::Mean),
            Op::Conv(ConvOp::GlobalMaxPool) => self.global_pool(node, ReduceKind::Max),
            Op::Reduce(r) => self.reduce(node, r),
            Op::Layout(l) => self.layout(node, l),
            _ => Ok(None),
        }
    }

    fn out_f32(&mut self, shape: &[usize]) -> Result<DevVal> {
        self.alloc(DType::F32, shape)
    }

    fn elementwise(&mut self, node: &Node, e: &E) -> Out {
        let (op, alpha, beta) = match e {
            E::Add => return self.binary(node, BinaryOp::Add),
            E::Sub => return self.binary(node, BinaryOp::Sub),
            E::Mul => return self.binary(node, BinaryOp::Mul),
            E::Div => return self.binary(node, BinaryOp::Div),
            E::Pow => return self.binary(node, BinaryOp::Pow),
            E::Max => return self.binary(node, BinaryOp::Max),
            E::Min => return self.binary(node, BinaryOp::Min),
            E::Cast { to, .. } => return self.cast(node, *to),
            E::Relu => (UnaryOp::Relu, 0.0, 0.0),
            E::Gelu { tanh: false } => (UnaryOp::Gelu, 0.0, 0.0),
            E::Gelu { tanh: true } => (UnaryOp::GeluTanh, 0.0, 0.0),
            E::Erf => (UnaryOp::Erf, 0.0, 0.0),
            E::Exp => (UnaryOp::Exp, 0.0, 0.0),
            E::Log => (UnaryOp::Log, 0.0, 0.0),
            E::Tanh => (UnaryOp::Tanh, 0.0, 0.0),
            E::Sigmoid => (UnaryOp::Sigmoid, 0.0, 0.0),
            E::Sqrt => (UnaryOp::Sqrt, 0.0, 0.0),
            E::Neg => (UnaryOp::Neg, 0.0, 0.0),
            E::Abs => (UnaryOp::Abs, 0.0, 0.0),
            E::Reciprocal => (UnaryOp::Reciprocal, 0.0, 0.0),
            E::Floor => (UnaryOp::Floor, 0.0, 0.0),
            E::Ceil => (UnaryOp::Ceil, 0.0, 0.0),
            E::LeakyRelu { alpha } => (UnaryOp::LeakyRelu, *alpha, 0.0),
            E::Swish { alpha } if *alpha == 1.0 => (UnaryOp::Silu, 0.0, 0.0),
            E::Clip { min, max } => {
                let lo = match self.host(node, 1)? {
                    Some(t) => t.scalar_f64()? as f32,
                    None => min.unwrap_or(f32::NEG_INFINITY),
                };
                let hi = match self.host(node, 2)? {
                    Some(t) => t.scalar_f64()? as f32,
                    None => max.unwrap_or(f32::INFINITY),
                };
                (UnaryOp::Clip, lo, hi)
            }
            _ => return Ok(None),
        };
        let x = self.dev(node, 0)?;
        let y = self.out_f32(&x.shape)?;
        if let Some((g, b)) = stride_grid(x.len()) {
            let (mut xp, mut yp, mut n) = (x.ptr(), y.ptr(), x.len() as i64);
            let (mut op, mut a, mut bb) = (op as i32, alpha, beta);
            // SAFETY: unary_f32(const float*, float*, i64, int, float, float) on live buffers.
            unsafe {
                self.launch(
                    "unary_f32",
                    g,
                    b,
                    &mut [
                        p(&mut xp),
                        p(&mut yp),
                        p(&mut n),
                        p(&mut op),
                        p(&mut a),
                        p(&mut bb),
                    ],
                )?
            };
        }
        Ok(Some(vec![Val::Dev(y)]))
    }

    fn binary(&mut self, node: &Node, op: BinaryOp) -> Out {
        let a = self.dev(node, 0)?;
        let b = self.dev(node, 1)?;
        let out = broadcast(&a.shape, &b.shape)
            .ok_or_else(|| invalid!("shapes {:?} and {:?} do not broadcast", a.shape, b.shape))?;
        let (dims, s) = coalesce(
            &out,
            &[
                broadcast_strides(&a.shape, &out),
                broadcast_strides(&b.shape, &out),
            ],
        );
        let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        let (Some(d6), Some(a6), Some(b6)) = (fixed(&dims), fixed(&s[0]), fixed(&s[1])) else {
            return Ok(None);
        };
        let y = self.out_f32(&out)?;
        if let Some((g, bl)) = stride_grid(y.len()) {
            let mut prm = BinaryParams {
                a: a.ptr(),
                b: b.ptr(),
                y: y.ptr(),
                n: y.len() as i64,
                dims: d6,
                sa: a6,
                sb: b6,
                rank: dims.len() as i32,
                op: op as i32,
            };
            // SAFETY: BinaryParams mirrors the CUDA struct; buffers hold the broadcast extents.
            unsafe { self.launch("binary_f32", g, bl, &mut [p(&mut prm)])? };
        }
        Ok(Some(vec![Val::Dev(y)]))
    }

    fn cast(&mut self, node: &Node, to: DType) -> Out {
        let x = self.dev(node, 0)?;
        let Some(name) = cast_kernel(x.dtype, to) else {
            return Ok(None);
        };
        if name.is_empty() {
            return Ok(Some(vec![Val::Dev(x)]));
        }
        let y = self.alloc(to, &x.shape)?;
        if let Some((g, b)) = stride_grid(x.len()) {
            let (mut xp, mut yp, mut n) = (x.ptr(), y.ptr(), x.len() as i64);
            // SAFETY: cast kernels take (const FROM*, TO*, i64) and both buffers hold n.
            unsafe { self.launch(name, g, b, &mut [p(&mut xp), p(&mut yp), p(&mut n)])? };
        }
        Ok(Some(vec![Val::Dev(y)]))
    }

    /// Launches the GEMM kernel for `dtype`.
    fn launch_gemm(&mut self, dtype: DType, mut prm: GemmParams, batch: usize) -> Result<bool> {
        let grid = match gemm_grid(prm.m as usize, prm.n as usize, batch) {
            Ok(Some(g)) => g,
            Ok(None) => return Ok(true),
            Err(_) => return Ok(false),
        };
        let (name, threads) = match dtype {
            DType::F32 if self.exe.tf32 => ("gemm_tf32", GEMM_MMA_THREADS),
            DType::F32 => ("gemm_f32", GEMM_SIMT_THREADS),
            DType::F16 => ("gemm_f16", GEMM_MMA_THREADS),
            DType::BF16 => ("gemm_bf16", GEMM_MMA_THREADS),
            _ => return Ok(false),
        };
        // SAFETY: GemmParams mirrors the CUDA struct; strides stay inside the operands.
        unsafe { self.launch(name, grid, (threads, 1, 1), &mut [p(&mut prm)])? };
        Ok(true)
    }

    fn matmul(&mut self, node: &Node) -> Out {
        let a = self.dev(node, 0)?;
        let b = self.dev(node, 1)?;
        if a.shape.is_empty() || b.shape.is_empty() {
            return Err(invalid!("MatMul inputs must have rank 1 or more"));
        }
        // 1-D operands are promoted (a row, a column) and the extra axis dropped after.
        let ash: Vec<usize> = if a.shape.len() == 1 {
            vec![1, a.shape[0]]
        } else {
            a.shape.clone()
        };
        let bsh: Vec<usize> = if b.shape.len() == 1 {
            vec![b.shape[0], 1]
        } else {
            b.shape.clone()
        };
        let (m, k) = (ash[ash.len() - 2], ash[ash.len() - 1]);
        let (k2, n) = (bsh[bsh.len() - 2], bsh[bsh.len() - 1]);
        if k != k2 {
            return Err(invalid!(
                "MatMul of {:?} and {:?}: inner dimensions differ",
                a.shape,
                b.shape
            ));
        }
        let (ab, bb) = (&ash[..ash.len() - 2], &bsh[..bsh.len() - 2]);
        let batch_shape = broadcast(ab, bb).ok_or_else(|| {
            invalid!("MatMul batch dimensions {ab:?} and {bb:?} do not broadcast")
        })?;
        let batch: usize = batch_shape.iter().product();
        // Each operand's batch is either one matrix for all (stride 0) or exactly the
        // broadcast batch (contiguous matrices); other mixes run on the host.
        let stride = |s: &[usize], per: usize| -> Option<i64> {
            let pad = batch_shape.len() - s.len();
            if s.iter().product::<usize>() == 1 {
                Some(0)
            } else if batch_shape[..pad].iter().all(|&d| d == 1)
                && s.iter().zip(&batch_shape[pad..]).all(|(x, y)| x == y)
            {
                Some(per as i64)
            } else {
                None
            }
        };
        let (Some(sa_b), Some(sb_b)) = (stride(ab, m * k), stride(bb, k * n)) else {
            return Ok(None);
        };
        let mut out: Vec<usize> = batch_shape.clone();
        if a.shape.len() > 1 {
            out.push(m);
        }
        if b.shape.len() > 1 {
            out.push(n);
        }
        let y = self.alloc(a.dtype, &out)?;
        // A shared B over a contiguous batch of A is one tall GEMM: better tiles.
        let (mm, nb, sa_b) = if sb_b == 0 && sa_b != 0 {
            (m * batch, 1, 0)
        } else {
            (m, batch, sa_b)
        };
        let prm = GemmParams {
            a: a.ptr(),
            b: b.ptr(),
            c: y.ptr(),
            m: mm as i64,
            n: n as i64,
            k: k as i64,
            sa_b,
            sa_m: k as i64,
            sa_k: 1,
            sb_b,
            sb_k: n as i64,
            sb_n: 1,
            sc_b: (m * n) as i64,
            sc_m: n as i64,
            alpha: 1.0,
            act: self.act as i32,
            ..Default::default()
        };
        if !self.launch_gemm(a.dtype, prm, nb)? {
            return Ok(None);
        }
        Ok(Some(vec![Val::Dev(y)]))
    }

    fn gemm(&mut self, node: &Node, alpha: f32, beta: f32, ta: bool, tb: bool) -> Out {
        let a = self.dev(node, 0)?;
        let b = self.dev(node, 1)?;
        let c = self.opt_dev(node, 2)?;
        if a.shape.len() != 2 || b.shape.len() != 2 {
            return Err(invalid!(
                "Gemm needs 2-D A and B, got {:?} and {:?}",
                a.shape,
                b.shape
            ));
        }
        let (m, k) = if ta {
            (a.shape[1], a.shape[0])
        } else {
            (a.shape[0], a.shape[1])
        };
        let (k2, n) = if tb {
            (b.shape[1], b.shape[0])
        } else {
            (b.shape[0], b.shape[1])
        };
        if k != k2 {
            return Err(invalid!("Gemm: A is {m}×{k} but B is {k2}×{n}"));
        }
        let (sbias_m, sbias_n) = match &c {
            None => (0, 0),
            Some(c) => {
                let cs = &c.shape;
                let ok = |d: usize, want: usize| d == want || d == 1;
                match cs.len() {
                    0 => (0, 0),
                    1 if ok(cs[0], n) => (0, (cs[0] != 1) as i64),
                    2 if ok(cs[0], m) && ok(cs[1], n) => {
                        ((cs[0] != 1) as i64 * cs[1] as i64, (cs[1] != 1) as i64)
                    }
                    _ => {
                        return Err(invalid!(
                            "Gemm: C of shape {cs:?} does not broadcast to {m}×{n}"
                        ))
                    }
                }
            }
        };
        let y = self.out_f32(&[m, n])?;
        let (sa_m, sa_k) = if ta { (1, m as i64) } else { (k as i64, 1) };
        let (sb_k, sb_n) = if tb { (1, k as i64) } else { (n as i64, 1) };
        let prm = GemmParams {
            a: a.ptr(),
            b: b.ptr(),
            bias: c.as_ref().map_or(0, |c| c.ptr()),
            c: y.ptr(),
            m: m as i64,
            n: n as i64,
            k: k as i64,
            sa_m,
            sa_k,
            sb_k,
            sb_n,
            sbias_m,
            sbias_n,
            sc_m: n as i64,
            alpha,
            beta,
            act: self.act as i32,
            ..Default::default()
        };
        if !self.launch_gemm(DType::F32, prm, 1)? {
            return Ok(None);
        }
        Ok(Some(vec![Val::Dev(y)]))
    }

    fn softmax(
        &mut self,
        node: &Node,
        axis: crossover_core::op::nn::SoftmaxAxis,
        log: bool,
    ) -> Out {
        let x = self.dev(node, 0)?;
        let Some((rows, cols)) = softmax_rows(axis, &x.shape) else {
            return Ok(None);
        };
        let y = self.out_f32(&x.shape)?;
        if cols > 0 {
            if let Some((g, b)) = row_grid(rows) {
                let (mut xp, mut yp, mut r, mut c, mut l) =
                    (x.ptr(), y.ptr(), rows as i64, cols as i64, log as i32);
                // SAFETY: softmax_f32(const float*, float*, i64, i64, int).
                unsafe {
                    self.launch(
                        "softmax_f32",
                        g,
                        b,
                        &mut [p(&mut xp), p(&mut yp), p(&mut r), p(&mut c), p(&mut l)],
                    )?
                };
            }
        }
        Ok(Some(vec![Val::Dev(y)]))
    }

    fn layernorm(&mut self, node: &Node, axis: i64, eps: f32) -> Out {
        let x = self.dev(node, 0)?;
        let a = norm_axis(axis, x.shape.len())?;
        let (rows, cols): (usize, usize) =
            (x.shape[..a].iter().product(), x.shape[a..].iter().product());
        let scale = self.dev(node, 1)?;
        let bias = self.opt_dev(node, 2)?;
        if scale.len() != cols || bias.as_ref().is_some_and(|b| b.len() != cols) {
            return Ok(None);
        }
        let y = self.out_f32(&x.shape)?;
        if cols > 0 {
            if let Some((g, b)) = row_grid(rows) {
                let (mut xp, mut sp, mut bp, mut yp) = (
                    x.ptr(),
                    scale.ptr(),
                    bias.as_ref().map_or(0, |b| b.ptr()),
                    y.ptr(),
                );
                let (mut r, mut c, mut e) = (rows as i64, cols as i64, eps);
                // SAFETY: layernorm_f32(x, gamma, beta, y, rows, cols, eps).
                unsafe {
                    self.launch(
                        "layernorm_f32",
                        g,
                        b,
                        &mut [
                            p(&mut xp),
                            p(&mut sp),
                            p(&mut bp),
                            p(&mut yp),
                            p(&mut r),
                            p(&mut c),
                            p(&mut e),
                        ],
                    )?
                };
            }
        }
        Ok(Some(vec![Val::Dev(y)]))
    }

    fn batchnorm(&mut self, node: &Node, eps: f32) -> Out {
        let x = self.dev(node, 0)?;
        if x.shape.len() < 2 {
            return Ok(None);
        }
        let (n, c) = (x.shape[0], x.shape[1]);
        let hw: usize = x.shape[2..].iter().product();
        let mut ps = Vec::new();
        for i in 1..5 {
            let t = self.dev(node, i)?;
            if t.len() != c {
                return Err(invalid!(
                    "BatchNormalization input {i} has {} values for {c} channels",
                    t.len()
                ));
            }
            ps.push(t.ptr());
        }
        let y = self.out_f32(&x.shape)?;
        if let Some((g, b)) = stride_grid(x.len()) {
            let (mut xp, mut yp) = (x.ptr(), y.ptr());
            let (mut s, mut bi, mut me, mut va) = (ps[0], ps[1], ps[2], ps[3]);
            let (mut nn, mut cc, mut hh, mut e) = (n as i64, c as i64, hw as i64, eps);
            // SAFETY: batchnorm_f32(x, scale, bias, mean, var, y, n, c, hw, eps).
            unsafe {
                self.launch(
                    "batchnorm_f32",
                    g,
                    b,
                    &mut [
                        p(&mut xp),
                        p(&mut s),
                        p(&mut bi),
                        p(&mut me),
                        p(&mut va),
                        p(&mut yp),
                        p(&mut nn),
                        p(&mut cc),
                        p(&mut hh),
                        p(&mut e),
                    ],
                )?
            };
        }
        Ok(Some(vec![Val::Dev(y)]))
    }

    fn conv(&mut self, node: &Node, attrs: &crossover_core::op::conv::ConvAttrs) -> Out {
        let x = self.dev(node, 0)?;
        let w = self.dev(node, 1)?;
        let bias = self.opt_dev(node, 2)?;
        if x.shape.len() != 4 || w.shape.len() != 4 {
            return Ok(None);
        }
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
        let (oc, cg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
        let groups = attrs.group as usize;
        if c != cg * groups || oc % groups != 0 {
            return Err(invalid!(
                "Conv: {c} input channels, weight {:?}, group {groups}",
                w.shape
            ));
        }
        if bias.as_ref().is_some_and(|b| b.len() != oc) {
            return Err(invalid!("Conv: bias does not have {oc} values"));
        }
        let win = attrs.window.resolve(&[h, wd], &[kh, kw], false)?;
        let (oh, ow) = (win.grid[0], win.grid[1]);
        let y = self.out_f32(&[n, oc, oh, ow])?;
        let Ok(grid) = gemm_grid(n * oh * ow, oc / groups, groups) else {
            return Ok(None);
        };
        if let Some(grid) = grid {
            let mut prm = ConvParams {
                x: x.ptr(),
                w: w.ptr(),
                bias: bias.as_ref().map_or(0, |b| b.ptr()),
                y: y.ptr(),
                n: n as i64,
                c: c as i64,
                h: h as i64,
                w_: wd as i64,
                oc: oc as i64,
                oh: oh as i64,
                ow: ow as i64,
                kh: kh as i64,
                kw: kw as i64,
                sh: win.strides[0] as i64,
                sw: win.strides[1] as i64,
                ph: win.pad_begin[0] as i64,
                pw: win.pad_begin[1] as i64,
                dh: win.dilations[0] as i64,
                dw: win.dilations[1] as i64,
                groups: groups as i64,
                act: self.act as i32,
                pad: 0,
            };
            // SAFETY: ConvParams mirrors the CUDA struct; extents match the buffers.
            unsafe {
                self.launch(
                    "conv2d_f32",
                    grid,
                    (GEMM_SIMT_THREADS, 1, 1),
                    &mut [p(&mut prm)],
                )?
            };
        }
        Ok(Some(vec![Val::Dev(y)]))
    }

    fn pool(
        &mut self,
        node: &Node,
        attrs: &crossover_core::op::conv::PoolAttrs,
        max: bool,
        count_pad: bool,
    ) -> Out {
        let x = self.dev(node, 0)?;
        let Some(ks) = &attrs.window.kernel_shape else {
            return Ok(None);
        };
        if x.shape.len() != 4 || ks.len() != 2 {
            return Ok(None);
        }
        let kernel = [ks[0].max(0) as usize, ks[1].max(0) as usize];
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
        let win = attrs.window.resolve(&[h, w], &kernel, attrs.ceil_mode)?;
        let (oh, ow) = (win.grid[0], win.grid[1]);
        let y = self.out_f32(&[n, c, oh, ow])?;
        if let Some((g, b)) = stride_grid(y.len()) {
            let mut prm = PoolParams {
                x: x.ptr(),
                y: y.ptr(),
                nc: (n * c) as i64,
                h: h as i64,
                w: w as i64,
                oh: oh as i64,
                ow: ow as i64,
                kh: kernel[0] as i64,
                kw: kernel[1] as i64,
                sh: win.strides[0] as i64,
                sw: win.strides[1] as i64,
                ph: win.pad_begin[0] as i64,
                pw: win.pad_begin[1] as i64,
                dh: win.dilations[0] as i64,
                dw: win.dilations[1] as i64,
                peh: win.pad_end[0] as i64,
                pew: win.pad_end[1] as i64,
                max: max as i32,
                count_pad: count_pad as i32,
            };
            // SAFETY: PoolParams mirrors the CUDA struct.
            unsafe { self.launch("pool2d_f32", g, b, &mut [p(&mut prm)])? };
        }
        Ok(Some(vec![Val::Dev(y)]))
    }

    fn launch_reduce(
        &mut self,
        x: &DevVal,
        out: &[usize],
        outer: usize,
        r: usize,
        inner: usize,
        kind: ReduceKind,
    ) -> Result<DevVal> {
        let y = self.out_f32(out)?;
        if let Some((g, b)) = stride_grid(outer * inner) {
            let (mut xp, mut yp) = (x.ptr(), y.ptr());
            let (mut o, mut rr, mut i, mut k) = (outer as i64, r as i64, inner as i64, kind as i32);
            // SAFETY: reduce_f32(x, y, outer, r, inner, op) with x of outer·r·inner values.
            unsafe {
                self.launch(
                    "reduce_f32",
                    g,
                    b,
                    &mut [
                        p(&mut xp),
                        p(&mut yp),
                        p(&mut o),
                        p(&mut rr),
                        p(&mut i),
                        p(&mut k),
                    ],
                )?
            };
        }
        Ok(y)
    }

    fn global_pool(&mut self, node: &Node, kind: ReduceKind) -> Out {
        let x = self.dev(node, 0)?;
        if x.shape.len() < 2 {
            return Ok(None);
        }
        let outer = x.shape[0] * x.shape[1];
        let r: usize = x.shape[2..].iter().product();
        let mut out = x.shape[..2].to_vec();
        out.extend(std::iter::repeat_n(1, x.shape.len() - 2));
        Ok(Some(vec![Val::Dev(
            self.launch_reduce(&x, &out, outer, r, 1, kind)?,
        )]))
    }

    fn reduce(&mut self, node: &Node, op: &ReduceOp) -> Out {
        let kind = match op {
            ReduceOp::ReduceSum { .. } => ReduceKind::Sum,
            ReduceOp::ReduceMean { .. } => ReduceKind::Mean,
            ReduceOp::ReduceMax { .. } => ReduceKind::Max,
            ReduceOp::ReduceMin { .. } => ReduceKind::Min,
            ReduceOp::ReduceProd { .. } => ReduceKind::Prod,
            ReduceOp::ReduceSumSquare { .. } => ReduceKind::SumSquare,
            _ => return Ok(None),
        };
        let Some(red) = op.reduction() else {
            return Ok(None);
        };
        let x = self.dev(node, 0)?;
        let rank = x.shape.len();
        if rank == 0 {
            return Ok(None);
        }
        let axes = match red.axes {
            Some(a) => Some(a.to_vec()),
            None => ints(self.host(node, 1)?)?,
        };
        let mut axes: Vec<usize> = match axes {
            Some(a) if !a.is_empty() => a
                .iter()
                .map(|&a| norm_axis(a, rank))
                .collect::<Result<_>>()?,
            _ if red.noop_with_empty_axes => return Ok(Some(vec![Val::Dev(x)])),
            _ => (0..rank).collect(),
        };
        axes.sort_unstable();
        axes.dedup();
        if axes.windows(2).any(|w| w[1] != w[0] + 1) {
            return Ok(None);
        }
        let (first, last) = (axes[0], axes[axes.len() - 1]);
        let outer: usize = x.shape[..first].iter().product();
        let r: usize = x.shape[first..=last].iter().product();
        let inner: usize = x.shape[last + 1..].iter().product();
        let out: Vec<usize> = (0..rank)
            .filter_map(|i| match (axes.contains(&i), red.keep_dims) {
                (true, true) => Some(1),
                (true, false) => None,
                (false, _) => Some(x.shape[i]),
            })
            .collect();
        Ok(Some(vec![Val::Dev(
            self.launch_reduce(&x, &out, outer, r, inner, kind)?,
        )]))
    }

    /// Strided copy of `dims` elements from `src` (+`src_off` elements) to `dst`
    /// (+`dst_off`), any element size.
    #[allow(clippy::too_many_arguments)]
    fn copy(
        &mut self,
        src: &DevVal,
        src_off: i64,
        ss: &[i64],
        dst: &DevVal,
        dst_off: i64,
        ds: &[i64],
        dims: &[usize],
    ) -> Result<bool> {
        let n: usize = dims.iter().product();
        let Some((g, b)) = stride_grid(n) else {
            return Ok(true);
        };
        let (d, s) = coalesce(dims, &[ss.to_vec(), ds.to_vec()]);
        let d64: Vec<i64> = d.iter().map(|&x| x as i64).collect();
        let (Some(dd), Some(s1), Some(s2)) = (fixed(&d64), fixed(&s[0]), fixed(&s[1])) else {
            return Ok(false);
        };
        let es = src.dtype.size();
        let name = match es {
            1 => "copy_b1",
            2 => "copy_b2",
            4 => "copy_b4",
            8 => "copy_b8",
            _ => return Ok(false),
        };
        let mut prm = CopyParams {
            src: (src.ptr() as i64 + src_off * es as i64) as u64,
            dst: (dst.ptr() as i64 + dst_off * es as i64) as u64,
            n: n as i64,
            dims: dd,
            ss: s1,
            ds: s2,
            rank: d.len() as i32,
            pad: 0,
        };
        // SAFETY: CopyParams mirrors the CUDA struct; every index stays in both buffers.
        unsafe { self.launch(name, g, b, &mut [p(&mut prm)])? };
        Ok(true)
    }

    fn layout(&mut self, node: &Node, l: &L) -> Out {
        match l {
            L::Identity
            | L::Reshape { .. }
            | L::Flatten { .. }
            | L::Squeeze { .. }
            | L::Unsqueeze { .. } => {
                let v = self
                    .input(node, 0)
                    .ok_or_else(|| invalid!("missing input"))?;
                let x = self.get(v)?;
                let shape = self.alias_shape(node, l, x.shape())?;
                let numel: usize = shape.iter().product();
                if numel != x.shape().iter().product::<usize>() {
                    return Err(invalid!("cannot reshape {:?} to {shape:?}", x.shape()));
                }
                Ok(Some(vec![match x {
                    Val::Dev(d) => Val::Dev(DevVal { shape, ..d }),
                    Val::Host(t) => Val::Host(t.reshape(&shape)?),
                }]))
            }
            L::Transpose { perm } => {
                let x = self.dev(node, 0)?;
                let r = x.shape.len();
                let perm: Vec<usize> = match perm {
                    Some(p) => p.iter().map(|&a| norm_axis(a, r)).collect::<Result<_>>()?,
                    None => (0..r).rev().collect(),
                };
                let mut seen = perm.clone();
                seen.sort_unstable();
                if seen != (0..r).collect::<Vec<_>>() {
                    return Err(invalid!("perm {perm:?} is not a permutation of {r} axes"));
                }
                let st = strides(&x.shape);
                let out: Vec<usize> = perm.iter().map(|&a| x.shape[a]).collect();
                let ss: Vec<i64> = perm.iter().map(|&a| st[a]).collect();
                let y = self.alloc(x.dtype, &out)?;
                if !self.copy(&x, 0, &ss, &y, 0, &strides(&out), &out)? {
                    return Ok(None);
                }
                Ok(Some(vec![Val::Dev(y)]))
            }
            L::Concat { axis } => {
                let mut xs = Vec::new();
                for i in 0..node.inputs.len() {
                    if self.input(node, i).is_some() {
                        xs.push(self.dev(node, i)?);
                    }
                }
                let Some(first) = xs.first() else {
                    return Err(invalid!("Concat needs inputs"));
                };
                let r = first.shape.len();
                let a = norm_axis(*axis, r)?;
                let mut out = first.shape.clone();
                out[a] = 0;
                for x in &xs {
                    if x.shape.len() != r || (0..r).any(|d| d != a && x.shape[d] != first.shape[d])
                    {
                        return Err(invalid!(
                            "Concat: shapes {:?} and {:?} differ off axis {a}",
                            first.shape,
                            x.shape
                        ));
                    }
                    out[a] += x.shape[a];
                }
                let y = self.alloc(first.dtype, &out)?;
                let ds = strides(&out);
                let mut off = 0i64;
                for x in &xs {
                    if !self.copy(x, 0, &strides(&x.shape), &y, off * ds[a], &ds, &x.shape)? {
                        return Ok(None);
                    }
                    off += x.shape[a] as i64;
                }
                Ok(Some(vec![Val::Dev(y)]))
            }
            L::Slice { starts, ends, axes } => {
                let x = self.dev(node, 0)?;
                let r = x.shape.len();
                let starts = match starts {
                    Some(s) => s.clone(),
                    None => {
                        ints(self.host(node, 1)?)?.ok_or_else(|| invalid!("Slice needs starts"))?
                    }
                };
                let ends = match ends {
                    Some(e) => e.clone(),
                    None => {
                        ints(self.host(node, 2)?)?.ok_or_else(|| invalid!("Slice needs ends"))?
                    }
                };
                let axes = match axes {
                    Some(a) => Some(a.clone()),
                    None if starts.len() == ends.len() && node.inputs.len() > 3 => {
                        ints(self.host(node, 3)?)?
                    }
                    None => None,
                };
                let steps = if node.inputs.len() > 4 {
                    ints(self.host(node, 4)?)?
                } else {
                    None
                };
                let axes: Vec<i64> = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
                if starts.len() != ends.len()
                    || axes.len() != starts.len()
                    || steps.as_ref().is_some_and(|s| s.len() != starts.len())
                {
                    return Err(invalid!(
                        "Slice: starts, ends, axes and steps differ in length"
                    ));
                }
                let st = strides(&x.shape);
                let mut out = x.shape.clone();
                let mut ss = st.clone();
                let mut off = 0i64;
                for (j, &ax) in axes.iter().enumerate() {
                    let a = norm_axis(ax, r)?;
                    let step = steps.as_ref().map_or(1, |s| s[j]);
                    if step == 0 {
                        return Err(invalid!("Slice step is 0"));
                    }
                    let (lo, hi) = slice_range(x.shape[a] as i64, starts[j], ends[j], step);
                    out[a] = slice_len(lo, hi, step);
                    let first = if step > 0 { lo } else { hi - 1 };
                    if out[a] > 0 {
                        off += first * st[a];
                    }
                    ss[a] = st[a] * step;
                }
                let y = self.alloc(x.dtype, &out)?;
                if !self.copy(&x, off, &ss, &y, 0, &strides(&out), &out)? {
                    return Ok(None);
                }
                Ok(Some(vec![Val::Dev(y)]))
            }
            L::Gather { axis } => {
                let x = self.dev(node, 0)?;
                let a = norm_axis(*axis, x.shape.len())?;
                let axis_len = x.shape[a];
                // Indices the host knows are checked here; device-resident ones read as
                // zeros when out of range (the kernel cannot raise an error).
                if let Some(v) = self.input(node, 1) {
                    let known = match self.exe.graph.constants.get(&v) {
                        Some(t) => Some(t.clone()),
                        None => match self.get(v)? {
                            Val::Host(t) => Some(t),
                            Val::Dev(_) => None,
                        },
                    };
                    if let Some(t) = known {
                        let bad = t
                            .to_i64_vec()?
                            .into_iter()
                            .find(|&i| i < -(axis_len as i64) || i >= axis_len as i64);
                        if let Some(i) = bad {
                            return Err(invalid!(
                                "Gather index {i} is out of range for axis of size {axis_len}"
                            ));
                        }
                    }
                }
                let idx = self.dev(node, 1)?;
                let outer: usize = x.shape[..a].iter().product();
                let inner: usize = x.shape[a + 1..].iter().product();
                let mut out = x.shape[..a].to_vec();
                out.extend(&idx.shape);
                out.extend(&x.shape[a + 1..]);
                let y = self.alloc(x.dtype, &out)?;
                let name = match x.dtype.size() {
                    1 => "gather_b1",
                    2 => "gather_b2",
                    4 => "gather_b4",
                    8 => "gather_b8",
                    _ => return Ok(None),
                };
                if let Some((g, b)) = stride_grid(y.len()) {
                    let (mut xp, mut ip, mut yp) = (x.ptr(), idx.ptr(), y.ptr());
                    let (mut o, mut al, mut ni, mut inn) = (
                        outer as i64,
                        axis_len as i64,
                        idx.len() as i64,
                        inner as i64,
                    );
                    // SAFETY: gather_bN(src, idx, dst, outer, axis_len, nidx, inner).
                    unsafe {
                        self.launch(
                            name,
                            g,
                            b,
                            &mut [
                                p(&mut xp),
                                p(&mut ip),
                                p(&mut yp),
                                p(&mut o),
                                p(&mut al),
                                p(&mut ni),
                                p(&mut inn),
                            ],
                        )?
                    };
                }
                Ok(Some(vec![Val::Dev(y)]))
            }
            _ => Ok(None),
        }
    }

    /// The output shape of a reshaping op.
    fn alias_shape(&mut self, node: &Node, l: &L, shape: &[usize]) -> Result<Vec<usize>> {
        let r = shape.len();
        Ok(match l {
            L::Identity => shape.to_vec(),
            L::Reshape { allow_zero } => {
                let want =
                    ints(self.host(node, 1)?)?.ok_or_else(|| invalid!("Reshape needs a shape"))?;
                let mut out = Vec::with_capacity(want.len());
                let mut infer = None;
                for (i, &d) in want.iter().enumerate() {
                    out.push(match d {
                        -1 if infer.is_none() => {
                            infer = Some(i);
                            1
                        }
                        0 if !allow_zero => *shape.get(i).ok_or_else(|| {
                            invalid!("Reshape: 0 at axis {i} beyond the input's rank")
                        })?,
                        d if d >= 0 => d as usize,
                        d => return Err(invalid!("Reshape: invalid dimension {d}")),
                    });
                }
                if let Some(i) = infer {
                    let known: usize = out.iter().product();
                    let total: usize = shape.iter().product();
                    if known == 0 || !total.is_multiple_of(known) {
                        return Err(invalid!("cannot reshape {shape:?} to {want:?}"));
                    }
                    out[i] = total / known;
                }
                out
            }
            L::Flatten { axis } => {
                let a = if *axis < 0 { *axis + r as i64 } else { *axis };
                if a < 0 || a > r as i64 {
                    return Err(invalid!("Flatten axis {axis} out of range for rank {r}"));
                }
                let a = a as usize;
                vec![shape[..a].iter().product(), shape[a..].iter().product()]
            }
            L::Squeeze { axes } => {
                let axes = match axes {
                    Some(a) => Some(a.clone()),
                    None => ints(self.host(node, 1)?)?,
                };
                match axes {
                    None => shape.iter().copied().filter(|&d| d != 1).collect(),
                    Some(a) => {
                        let a: Vec<usize> =
                            a.iter().map(|&x| norm_axis(x, r)).collect::<Result<_>>()?;
                        if a.iter().any(|&i| shape[i] != 1) {
                            return Err(invalid!(
                                "Squeeze of axes {a:?} with sizes other than 1 in {shape:?}"
                            ));
                        }
                        (0..r)
                            .filter(|i| !a.contains(i))
                            .map(|i| shape[i])
                            .collect()
                    }
                }
            }
            L::Unsqueeze { axes } => {
                let axes = match axes {
                    Some(a) => a.clone(),
                    None => ints(self.host(node, 1)?)?
                        .ok_or_else(|| invalid!("Unsqueeze needs axes"))?,
                };
                let out_r = r + axes.len();
                let mut a: Vec<usize> = axes
                    .iter()
                    .map(|&x| norm_axis(x, out_r))
                    .collect::<Result<_>>()?;
                a.sort_unstable();
                let mut src = shape.iter();
                (0..out_r)
                    .map(|i| {
                        if a.contains(&i) {
                            1
                        } else {
                            *src.next().unwrap_or(&1)
                        }
                    })
                    .collect()
            }
            _ => shape.to_vec(),
        })
    }

    fn attention(&mut self, node: &Node, q_heads: Option<usize>, scale: Option<f32>) -> Out {
        let q = self.dev(node, 0)?;
        let k = self.dev(node, 1)?;
        let v = self.dev(node, 2)?;
        let mask = self.opt_dev(node, 3)?;
        if mask
            .as_ref()
            .is_some_and(|m| m.dtype != DType::F32 || m.shape.len() > 4)
        {
            return Ok(None);
        }
        // (batch, heads, seq, dim) view and strides of each operand.
        let view = |x: &DevVal, heads: Option<usize>| -> Option<([usize; 4], [i64; 4])> {
            match x.shape.len() {
                4 => {
                    let s = strides(&x.shape);
                    Some((
                        [x.shape[0], x.shape[1], x.shape[2], x.shape[3]],
                        [s[0], s[1], s[2], s[3]],
                    ))
                }
                3 => {
                    let h = heads?;
                    let (b, sq, hd) = (x.shape[0], x.shape[1], x.shape[2]);
                    if h == 0 || hd % h != 0 {
                        return None;
                    }
                    let d = hd / h;
                    Some(([b, h, sq, d], [(sq * hd) as i64, d as i64, hd as i64, 1]))
                }
                _ => None,
            }
        };
        let (Some((qd, qs)), Some((kd, ks)), Some((vd, vs))) =
            (view(&q, q_heads), view(&k, q_heads), view(&v, q_heads))
        else {
            return Ok(None);
        };
        let [b, h, sq, d] = qd;
        let sk = kd[2];
        if kd[0] != b
            || vd[0] != b
            || kd[1] != h
            || vd[1] != h
            || kd[3] != d
            || vd[2] != sk
            || vd[3] != d
            || d > ATTENTION_MAX_HEAD
        {
            return Ok(None);
        }
        let full = [b, h, sq, sk];
        let ms = match &mask {
            Some(m) => {
                if broadcast(&m.shape, &full).as_deref() != Some(&full[..]) {
                    return Ok(None);
                }
                let s = broadcast_strides(&m.shape, &full);
                [s[0], s[1], s[2], s[3]]
            }
            None => [0; 4],
        };
        let y = self.out_f32(&q.shape)?;
        let os = if q.shape.len() == 4 {
            qs
        } else {
            [(sq * h * d) as i64, d as i64, (h * d) as i64, 1]
        };
        let Ok(grid) = attention_grid(b * h * sq) else {
            return Ok(None);
        };
        if let Some((g, bl)) = grid {
            let mut prm = AttnParams {
                q: q.ptr(),
                k: k.ptr(),
                v: v.ptr(),
                mask: mask.as_ref().map_or(0, |m| m.ptr()),
                o: y.ptr(),
                b: b as i64,
                h: h as i64,
                sq: sq as i64,
                sk: sk as i64,
                d: d as i64,
                qs,
                ks,
                vs,
                os,
                ms,
                scale: scale.unwrap_or(1.0 / (d as f32).sqrt()),
                causal: 0,
            };
            // SAFETY: AttnParams mirrors the CUDA struct; views stay inside each operand.
            unsafe { self.launch("sdpa_f32", g, bl, &mut [p(&mut prm)])? };
        }
        Ok(Some(vec![Val::Dev(y)]))
    }
}
