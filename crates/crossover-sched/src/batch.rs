//! Requests as slices of a batch: which inputs and outputs carry the batch axis, and how
//! requests are joined into one run and the run's outputs cut back into replies.
//!
//! A model is batchable when every input and every output has the same symbolic (or
//! unknown) leading dimension: then `n` requests of `b_i` samples run as one request of
//! `Σ b_i` samples, and output rows `[o_i, o_i + b_i)` belong to request `i`.

use std::ops::Range;

use crossover_core::{by_dtype, invalid, with_array, Dim, Element, Graph, Result, Tensor};
use ndarray::{Axis, Slice};

/// How requests to one model may be combined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchAxis {
    /// Dimension 0 of every input and output is the batch.
    Leading,
    /// The model has no common batch dimension: each request runs alone, whole.
    None,
}

impl BatchAxis {
    pub fn of(graph: &Graph) -> BatchAxis {
        let leading: Vec<Option<&Dim>> = graph
            .input_infos()
            .chain(graph.output_infos())
            .map(|v| v.shape.as_ref().and_then(|s| s.first()))
            .collect();
        let symbol = match leading.first() {
            Some(Some(d @ (Dim::Param(_) | Dim::Unknown))) => *d,
            _ => return BatchAxis::None,
        };
        let all_same = leading.iter().all(|d| match (d, symbol) {
            (Some(Dim::Param(a)), Dim::Param(b)) => a == b,
            (Some(Dim::Unknown), Dim::Unknown) => true,
            _ => false,
        });
        if all_same && graph.input_infos().next().is_some() {
            BatchAxis::Leading
        } else {
            BatchAxis::None
        }
    }

    /// Samples in one request: its leading dimension, or 1 for an unbatchable model.
    pub fn samples(&self, inputs: &[Tensor]) -> Result<usize> {
        match self {
            BatchAxis::None => Ok(1),
            BatchAxis::Leading => {
                let n = leading(&inputs[0])?;
                for t in &inputs[1..] {
                    if leading(t)? != n {
                        return Err(invalid!(
                            "the inputs disagree on the batch size: {:?} and {:?}",
                            inputs[0].shape(),
                            t.shape()
                        ));
                    }
                }
                Ok(n)
            }
        }
    }
}

fn leading(t: &Tensor) -> Result<usize> {
    t.shape()
        .first()
        .copied()
        .ok_or_else(|| invalid!("a batched input must have rank 1 or more, got a scalar"))
}

/// Whether two requests can share a run: same dtypes and the same shapes past dim 0.
pub fn compatible(a: &[Tensor], b: &[Tensor]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.dtype() == y.dtype() && x.shape().get(1..) == y.shape().get(1..))
}

/// Joins requests (each a list of inputs in model order) along dimension 0.
pub fn join(requests: &[&[Tensor]]) -> Result<Vec<Tensor>> {
    let Some(first) = requests.first() else {
        return Err(invalid!("no requests to join"));
    };
    if requests.len() == 1 {
        return Ok(first.to_vec());
    }
    (0..first.len())
        .map(|i| {
            let parts: Vec<&Tensor> = requests.iter().map(|r| &r[i]).collect();
            // By dtype: the parts are read through views, so a borrowed one is not copied twice.
            by_dtype!(parts[0].dtype(), join_as(&parts))
        })
        .collect()
}

fn join_as<T: Element>(parts: &[&Tensor]) -> Result<Tensor> {
    let views = parts
        .iter()
        .map(|t| t.view::<T>())
        .collect::<Result<Vec<_>>>()?;
    let joined = ndarray::concatenate(Axis(0), &views)
        .map_err(|e| invalid!("cannot batch requests of shapes {:?}: {e}", shapes(parts)))?;
    Ok(Tensor::from(joined))
}

fn shapes(parts: &[&Tensor]) -> Vec<Vec<usize>> {
    parts.iter().map(|t| t.shape().to_vec()).collect()
}

/// Cuts one run's outputs into the rows of each request; shares memory with `outputs`.
pub fn split(outputs: &[Tensor], rows: &[Range<usize>]) -> Result<Vec<Vec<Tensor>>> {
    let total = rows.last().map_or(0, |r| r.end);
    for o in outputs {
        if o.shape().first() != Some(&total) {
            return Err(invalid!(
                "an output of shape {:?} does not have the batch of {total} rows it was run with",
                o.shape()
            ));
        }
    }
    Ok(rows
        .iter()
        .map(|r| {
            outputs
                .iter()
                .map(|o| {
                    with_array!(o, a => {
                        let mut part = a.clone();
                        part.slice_axis_inplace(Axis(0), Slice::from(r.clone()));
                        Tensor::from(part)
                    })
                })
                .collect()
        })
        .collect())
}

/// Row ranges of consecutive requests of `sizes` samples.
pub fn row_ranges(sizes: impl IntoIterator<Item = usize>) -> Vec<Range<usize>> {
    let mut start = 0;
    sizes
        .into_iter()
        .map(|n| {
            let r = start..start + n;
            start += n;
            r
        })
        .collect()
}

/// The same rows of every input: one request's share when it is split across devices.
pub fn take_rows(inputs: &[Tensor], rows: Range<usize>) -> Vec<Tensor> {
    inputs
        .iter()
        .map(|t| {
            with_array!(t, a => {
                let mut part = a.clone();
                part.slice_axis_inplace(Axis(0), Slice::from(rows.clone()));
                Tensor::from(part)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: &[usize], base: f32) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_vec(shape, (0..n).map(|i| base + i as f32).collect()).unwrap()
    }

    #[test]
    fn join_then_split_gives_back_each_request() {
        let a = vec![t(&[1, 3], 0.0)];
        let b = vec![t(&[2, 3], 10.0)];
        let joined = join(&[&a, &b]).unwrap();
        assert_eq!(joined[0].shape(), &[3, 3]);
        let parts = split(&joined, &row_ranges([1, 2])).unwrap();
        let f = |t: &Tensor| t.view::<f32>().unwrap().to_owned();
        assert_eq!(f(&parts[0][0]), f(&a[0]));
        assert_eq!(f(&parts[1][0]), f(&b[0]));
        assert_eq!(take_rows(&b, 1..2)[0].view::<f32>().unwrap()[[0, 0]], 13.0);
    }

    #[test]
    fn mismatched_requests_are_refused() {
        assert!(!compatible(&[t(&[1, 3], 0.0)], &[t(&[1, 4], 0.0)]));
        assert!(join(&[&[t(&[1, 3], 0.0)], &[t(&[1, 4], 0.0)]]).is_err());
        let e = split(&[t(&[2, 3], 0.0)], &row_ranges([1, 2])).unwrap_err();
        assert!(e.to_string().contains("batch of 3 rows"), "{e}");
    }
}
