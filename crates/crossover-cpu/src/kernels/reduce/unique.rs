//! Unique.

use std::cmp::Ordering;

use crossover_core::{with_array, Element, Result, Tensor};
use ndarray::{Array1, ArrayD, ArrayViewD, IxDyn};

use super::num::cmp_nan_last;
use crate::kernels::util::norm_axis;

fn unique_of<T: Element + PartialOrd>(
    a: ArrayViewD<T>,
    axis: Option<usize>,
    sorted: bool,
) -> Vec<Tensor> {
    // Rows to deduplicate: single elements, or the slices along `axis` moved first.
    let (rows, n, rest) = match axis {
        None => (a.iter().cloned().collect::<Vec<T>>(), a.len(), Vec::new()),
        Some(ax) => {
            let mut order: Vec<usize> = vec![ax];
            order.extend((0..a.ndim()).filter(|&d| d != ax));
            let p = a.permuted_axes(IxDyn(&order));
            let rest = p.shape()[1..].to_vec();
            let n = p.shape()[0];
            (p.iter().cloned().collect(), n, rest)
        }
    };
    let w = rest.iter().product::<usize>();
    let row = |i: usize| &rows[i * w..(i + 1) * w];
    let cmp_rows = |p: usize, q: usize| {
        row(p)
            .iter()
            .zip(row(q))
            .map(|(u, v)| cmp_nan_last(u, v))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    };
    let mut by_value: Vec<usize> = (0..n).collect();
    by_value.sort_by(|&p, &q| cmp_rows(p, q));
    // Groups of equal rows: (first index, count), in value order.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut group_of = vec![0usize; n];
    for (pos, &i) in by_value.iter().enumerate() {
        if pos == 0 || cmp_rows(by_value[pos - 1], i) != Ordering::Equal {
            groups.push((i, 0));
        }
        let g = groups.len() - 1;
        groups[g].1 += 1;
        group_of[i] = g;
    }
    let mut rank: Vec<usize> = (0..groups.len()).collect();
    if !sorted {
        rank.sort_by_key(|&g| groups[g].0);
    }
    // `slot[g]` is where group `g` lands in the output.
    let mut slot = vec![0usize; groups.len()];
    for (s, &g) in rank.iter().enumerate() {
        slot[g] = s;
    }
    let u = groups.len();
    let mut y = Vec::with_capacity(u * w);
    for &g in &rank {
        y.extend_from_slice(row(groups[g].0));
    }
    let y = match axis {
        None => ArrayD::from_shape_vec(IxDyn(&[u]), y).expect("shape matches"),
        Some(ax) => {
            let mut shape = vec![u];
            shape.extend(&rest);
            let moved = ArrayD::from_shape_vec(IxDyn(&shape), y).expect("shape matches");
            // Move the first axis back to `ax`.
            let mut back: Vec<usize> = (1..shape.len()).collect();
            back.insert(ax, 0);
            let v = moved.view().permuted_axes(IxDyn(&back));
            v.as_standard_layout().into_owned()
        }
    };
    let first: Array1<i64> = rank.iter().map(|&g| groups[g].0 as i64).collect();
    let inverse: Array1<i64> = group_of.iter().map(|&g| slot[g] as i64).collect();
    let counts: Array1<i64> = rank.iter().map(|&g| groups[g].1 as i64).collect();
    vec![
        Tensor::from(y),
        Tensor::from(first.into_dyn()),
        Tensor::from(inverse.into_dyn()),
        Tensor::from(counts.into_dyn()),
    ]
}

/// Unique elements (or slices along `axis`), with first indices, inverse indices and
/// counts.
pub fn unique(t: &Tensor, axis: Option<i64>, sorted: bool) -> Result<Vec<Tensor>> {
    let axis = axis.map(|a| norm_axis(a, t.rank())).transpose()?;
    if axis.is_some() && t.rank() == 0 {
        return Err(crossover_core::invalid!(
            "Unique along an axis needs rank 1 or more"
        ));
    }
    Ok(with_array!(t, a => unique_of(a.view(), axis, sorted)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsorted_keeps_first_occurrence_order() {
        let t = Tensor::from_vec(&[6], vec![2f32, 1., 1., 3., 4., 3.]).unwrap();
        let r = unique(&t, None, false).unwrap();
        assert_eq!(
            r[0].cast(crossover_core::DType::I64)
                .unwrap()
                .to_i64_vec()
                .unwrap(),
            vec![2, 1, 3, 4]
        );
        assert_eq!(r[1].to_i64_vec().unwrap(), vec![0, 1, 3, 4]);
        assert_eq!(r[2].to_i64_vec().unwrap(), vec![0, 1, 1, 2, 3, 2]);
        assert_eq!(r[3].to_i64_vec().unwrap(), vec![1, 2, 2, 1]);
        let r = unique(&t, None, true).unwrap();
        assert_eq!(r[1].to_i64_vec().unwrap(), vec![1, 0, 3, 4]);
    }

    #[test]
    fn rows_along_axis() {
        let t = Tensor::from_vec(&[3, 2], vec![1i32, 0, 0, 1, 1, 0]).unwrap();
        let r = unique(&t, Some(0), true).unwrap();
        assert_eq!(r[0].shape(), &[2, 2]);
        assert_eq!(r[0].to_i64_vec().unwrap(), vec![0, 1, 1, 0]);
        assert_eq!(r[2].to_i64_vec().unwrap(), vec![1, 0, 1]);
        assert!(unique(&t, Some(2), true).is_err());
    }
}
