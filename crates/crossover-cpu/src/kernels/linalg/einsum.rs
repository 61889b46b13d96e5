//! Einsum: operands reduced to their distinct labels (diagonals taken, private labels
//! summed), then contracted pairwise left to right as batched matrix products.

use crossover_core::{invalid, DType, Error, Result, Tensor};
use ndarray::{ArrayD, Axis, IxDyn};
use num_traits::Zero;

use super::gemm::{matmul_int, matmul_real, IntElem, Real};

/// Labels are letters; ellipsis axes get labels from this value up, right-aligned.
const ELLIPSIS: u32 = 256;

struct Spec {
    inputs: Vec<Vec<u32>>,
    output: Vec<u32>,
}

fn parse_term(term: &str) -> Result<(Vec<u32>, Option<usize>)> {
    let mut labels = Vec::new();
    let mut ellipsis = None;
    let mut rest = term;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("...") {
            if ellipsis.is_some() {
                return Err(invalid!("Einsum term {term:?} has two ellipses"));
            }
            ellipsis = Some(labels.len());
            rest = &rest[3..];
            continue;
        }
        if !c.is_ascii_alphabetic() {
            return Err(invalid!("Einsum term {term:?} has invalid character {c:?}"));
        }
        labels.push(c as u32);
        rest = &rest[1..];
    }
    Ok((labels, ellipsis))
}

fn parse(equation: &str, shapes: &[&[usize]]) -> Result<Spec> {
    let eq: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let terms: Vec<&str> = lhs.split(',').collect();
    if terms.len() != shapes.len() {
        return Err(invalid!(
            "Einsum equation {equation:?} names {} operands, got {}",
            terms.len(),
            shapes.len()
        ));
    }
    let parsed = terms
        .iter()
        .map(|t| parse_term(t))
        .collect::<Result<Vec<_>>>()?;
    let mut ell_rank = 0;
    for ((labels, ell), shape) in parsed.iter().zip(shapes) {
        let r = shape.len();
        match ell {
            None if labels.len() != r => {
                return Err(invalid!(
                    "Einsum term of {} labels for an operand of rank {r}",
                    labels.len()
                ))
            }
            Some(_) if labels.len() > r => {
                return Err(invalid!("Einsum term longer than its operand's rank {r}"))
            }
            Some(_) => ell_rank = ell_rank.max(r - labels.len()),
            None => {}
        }
    }
    let expand = |labels: &[u32], ell: Option<usize>, n: usize| -> Vec<u32> {
        match ell {
            None => labels.to_vec(),
            Some(at) => {
                let mut v = labels[..at].to_vec();
                v.extend((ell_rank - n..ell_rank).map(|i| ELLIPSIS + i as u32));
                v.extend_from_slice(&labels[at..]);
                v
            }
        }
    };
    let inputs: Vec<Vec<u32>> = parsed
        .iter()
        .zip(shapes)
        .map(|((l, e), s)| expand(l, *e, s.len() - l.len()))
        .collect();
    let output = match rhs {
        Some(r) => {
            let (l, e) = parse_term(r)?;
            let out = expand(&l, e, if e.is_some() { ell_rank } else { 0 });
            for (i, x) in out.iter().enumerate() {
                if out[..i].contains(x) {
                    return Err(invalid!("Einsum output repeats a label"));
                }
                if !inputs.iter().any(|t| t.contains(x)) {
                    return Err(invalid!("Einsum output label not among the inputs"));
                }
            }
            out
        }
        None => {
            let mut out: Vec<u32> = (0..ell_rank as u32).map(|i| ELLIPSIS + i).collect();
            let mut once: Vec<u32> = Vec::new();
            for t in &parsed {
                for &l in &t.0 {
                    let n: usize = parsed
                        .iter()
                        .map(|t| t.0.iter().filter(|&&x| x == l).count())
                        .sum();
                    if n == 1 {
                        once.push(l);
                    }
                }
            }
            once.sort_unstable();
            out.extend(once);
            out
        }
    };
    Ok(Spec { inputs, output })
}

/// One operand or intermediate: an array and the label of each axis.
struct Term<T> {
    a: ArrayD<T>,
    labels: Vec<u32>,
}

impl<T: Clone + Zero + std::ops::Add<Output = T>> Term<T> {
    /// Takes the diagonal over repeated labels.
    fn diagonal(self) -> Result<Self> {
        let mut uniq: Vec<u32> = Vec::new();
        for &l in &self.labels {
            if !uniq.contains(&l) {
                uniq.push(l);
            }
        }
        if uniq.len() == self.labels.len() {
            return Ok(self);
        }
        let mut dims = Vec::with_capacity(uniq.len());
        for &u in &uniq {
            let sizes: Vec<usize> = self
                .labels
                .iter()
                .zip(self.a.shape())
                .filter(|(&l, _)| l == u)
                .map(|(_, &d)| d)
                .collect();
            if sizes.iter().any(|&d| d != sizes[0]) {
                return Err(invalid!("Einsum diagonal over axes of sizes {sizes:?}"));
            }
            dims.push(sizes[0]);
        }
        let pos: Vec<usize> = self
            .labels
            .iter()
            .map(|l| uniq.iter().position(|u| u == l).expect("label is listed"))
            .collect();
        let src = &self.a;
        let mut idx = vec![0usize; pos.len()];
        let a = ArrayD::from_shape_fn(IxDyn(&dims), |o| {
            for (i, &p) in pos.iter().enumerate() {
                idx[i] = o[p];
            }
            src[IxDyn(&idx)].clone()
        });
        Ok(Term { a, labels: uniq })
    }

    /// Sums the axes whose labels `keep` rejects.
    fn sum_unless(mut self, keep: impl Fn(u32) -> bool) -> Self {
        for ax in (0..self.labels.len()).rev() {
            if !keep(self.labels[ax]) {
                self.a = self.a.sum_axis(Axis(ax));
                self.labels.remove(ax);
            }
        }
        self
    }

    /// Permutes the axes into the order of `order` (a permutation of the labels).
    fn permuted(&self, order: &[u32]) -> ArrayD<T> {
        let perm: Vec<usize> = order
            .iter()
            .map(|l| {
                self.labels
                    .iter()
                    .position(|x| x == l)
                    .expect("label present")
            })
            .collect();
        self.a
            .view()
            .permuted_axes(IxDyn(&perm))
            .as_standard_layout()
            .into_owned()
    }
}

type MatMulFn<T> = fn(ndarray::ArrayViewD<T>, ndarray::ArrayViewD<T>) -> Result<ArrayD<T>>;

fn contract<T>(
    a: Term<T>,
    b: Term<T>,
    keep: &[u32],
    size: &dyn Fn(u32) -> usize,
    mm: MatMulFn<T>,
) -> Result<Term<T>>
where
    T: Clone + Zero + std::ops::Add<Output = T>,
{
    let a = a.sum_unless(|l| keep.contains(&l) || b.labels.contains(&l));
    let b = b.sum_unless(|l| keep.contains(&l) || a.labels.contains(&l));
    let in_b = |l: &u32| b.labels.contains(l);
    let batch: Vec<u32> = a
        .labels
        .iter()
        .copied()
        .filter(|l| in_b(l) && keep.contains(l))
        .collect();
    let summed: Vec<u32> = a
        .labels
        .iter()
        .copied()
        .filter(|l| in_b(l) && !keep.contains(l))
        .collect();
    let left: Vec<u32> = a.labels.iter().copied().filter(|l| !in_b(l)).collect();
    let right: Vec<u32> = b
        .labels
        .iter()
        .copied()
        .filter(|l| !a.labels.contains(l))
        .collect();
    let dims = |t: &Term<T>, ls: &[u32]| -> Vec<usize> {
        ls.iter()
            .map(|l| t.a.shape()[t.labels.iter().position(|x| x == l).expect("label present")])
            .collect()
    };
    let prod = |v: &[usize]| v.iter().product::<usize>();
    let csize: usize = summed.iter().map(|&l| size(l)).product();
    // Lays out `order` and folds it into [batch..., rows, cols]; summed axes of size 1
    // broadcast against the other operand's.
    let prepare = |t: &Term<T>, order: Vec<u32>, rows: usize, cols: usize| -> Result<ArrayD<T>> {
        let p = t.permuted(&order);
        let full: Vec<usize> = order
            .iter()
            .enumerate()
            .map(|(i, &l)| {
                if summed.contains(&l) {
                    size(l)
                } else {
                    p.shape()[i]
                }
            })
            .collect();
        let p = p
            .broadcast(IxDyn(&full))
            .ok_or_else(|| {
                invalid!(
                    "Einsum: axes of sizes {:?} and {full:?} disagree",
                    p.shape()
                )
            })?
            .as_standard_layout()
            .into_owned();
        let mut shape: Vec<usize> = full[..batch.len()].to_vec();
        shape.extend([rows, cols]);
        Ok(p.into_shape_with_order(IxDyn(&shape))
            .expect("same element count"))
    };
    let la = dims(&a, &left);
    let rb = dims(&b, &right);
    let am = prepare(&a, [&batch[..], &left, &summed].concat(), prod(&la), csize)?;
    let bm = prepare(&b, [&batch[..], &summed, &right].concat(), csize, prod(&rb))?;
    let y = mm(am.view(), bm.view())?;
    let nb = y.ndim() - 2;
    let mut shape: Vec<usize> = y.shape()[..nb].to_vec();
    shape.extend(&la);
    shape.extend(&rb);
    let y = y
        .into_shape_with_order(IxDyn(&shape))
        .expect("same element count");
    Ok(Term {
        a: y,
        labels: [batch, left, right].concat(),
    })
}

fn run<T>(spec: &Spec, ops: Vec<ArrayD<T>>, mm: MatMulFn<T>) -> Result<ArrayD<T>>
where
    T: Clone + Zero + std::ops::Add<Output = T>,
{
    let mut sizes: Vec<(u32, usize)> = Vec::new();
    for (labels, a) in spec.inputs.iter().zip(&ops) {
        for (&l, &d) in labels.iter().zip(a.shape()) {
            match sizes.iter_mut().find(|(x, _)| *x == l) {
                Some((_, s)) if *s == d || d == 1 => {}
                Some((_, s)) if *s == 1 => *s = d,
                Some((_, s)) => return Err(invalid!("Einsum: label sizes {s} and {d} disagree")),
                None => sizes.push((l, d)),
            }
        }
    }
    let size = |l: u32| sizes.iter().find(|(x, _)| *x == l).map_or(1, |p| p.1);
    let mut terms = Vec::with_capacity(ops.len());
    for (i, (a, labels)) in ops.into_iter().zip(&spec.inputs).enumerate() {
        let t = Term {
            a,
            labels: labels.clone(),
        }
        .diagonal()?;
        let elsewhere = |l: u32| {
            spec.output.contains(&l)
                || spec
                    .inputs
                    .iter()
                    .enumerate()
                    .any(|(j, ls)| j != i && ls.contains(&l))
        };
        terms.push(t.sum_unless(elsewhere));
    }
    let mut iter = terms.into_iter();
    let mut acc = iter
        .next()
        .ok_or_else(|| invalid!("Einsum needs an operand"))?;
    let rest: Vec<Term<T>> = iter.collect();
    for (i, t) in rest.into_iter().enumerate() {
        let keep: Vec<u32> = spec
            .output
            .iter()
            .copied()
            .chain(spec.inputs[i + 2..].iter().flatten().copied())
            .collect();
        acc = contract(acc, t, &keep, &size, mm)?;
    }
    let acc = acc.sum_unless(|l| spec.output.contains(&l));
    Ok(acc.permuted(&spec.output))
}

pub(super) fn eval(equation: &str, inputs: &[&Tensor]) -> Result<Tensor> {
    let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape()).collect();
    let spec = parse(equation, &shapes)?;
    let dtype = inputs.first().map_or(DType::F32, |t| t.dtype());
    if inputs.iter().any(|t| t.dtype() != dtype) {
        return Err(invalid!("Einsum needs operands of one type"));
    }
    fn arrays<T: crossover_core::tensor::Element>(
        inputs: &[&Tensor],
        dt: DType,
    ) -> Result<Vec<ArrayD<T>>> {
        inputs
            .iter()
            .map(|t| Ok(t.cast(dt)?.into_arc::<T>()?.into_owned()))
            .collect()
    }
    fn real<T: Real + crossover_core::tensor::Element>(
        s: &Spec,
        i: &[&Tensor],
        dt: DType,
    ) -> Result<Tensor> {
        Ok(run(s, arrays::<T>(i, dt)?, matmul_real::<T>)?.into())
    }
    fn int<T: IntElem + crossover_core::tensor::Element + std::ops::Add<Output = T>>(
        s: &Spec,
        i: &[&Tensor],
        dt: DType,
    ) -> Result<Tensor> {
        Ok(run(s, arrays::<T>(i, dt)?, matmul_int::<T>)?.into())
    }
    match dtype {
        DType::F32 => real::<f32>(&spec, inputs, DType::F32),
        DType::F64 => real::<f64>(&spec, inputs, DType::F64),
        DType::F16 | DType::BF16 => real::<f32>(&spec, inputs, DType::F32)?.cast(dtype),
        DType::I32 => int::<i32>(&spec, inputs, dtype),
        DType::I64 => int::<i64>(&spec, inputs, dtype),
        DType::U32 => int::<u32>(&spec, inputs, dtype),
        DType::U64 => int::<u64>(&spec, inputs, dtype),
        other => Err(Error::Unsupported(format!("Einsum on {other} tensors"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize]) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_vec(shape, (0..n).map(|v| v as f32).collect()).unwrap()
    }

    #[test]
    fn trace_batch_matmul_and_errors() {
        let m = t(&[3, 3]);
        assert_eq!(eval("ii", &[&m]).unwrap().to_f64_vec().unwrap(), vec![12.0]);
        let a = t(&[2, 2, 3]);
        let b = t(&[2, 3, 1]);
        let y = eval("...ij,...jk->...ik", &[&a, &b]).unwrap();
        assert_eq!(y.shape(), &[2, 2, 1]);
        assert_eq!(y.to_f64_vec().unwrap(), vec![5.0, 14.0, 86.0, 122.0]);
        assert_eq!(eval("ij->ji", &[&m]).unwrap().shape(), &[3, 3]);
        assert!(eval("ij,jk", &[&m]).is_err());
        assert!(eval("ijk", &[&m]).is_err());
        assert!(eval("i,i", &[&t(&[2]), &t(&[3])]).is_err());
    }
}
