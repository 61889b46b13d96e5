//! Viewing a tensor as `[outer, reduced, inner]` over contiguous memory.

use ndarray::{ArrayViewD, CowArray, IxDyn};

/// A contiguous copy (or borrow) of the input and the three extents of its
/// `[outer, reduced, inner]` view.
pub struct Canon<'a, T> {
    pub data: CowArray<'a, T, IxDyn>,
    pub outer: usize,
    pub reduced: usize,
    pub inner: usize,
}

impl<T> Canon<'_, T> {
    pub fn slice(&self) -> &[T] {
        self.data
            .as_slice()
            .expect("canonical data is in standard layout")
    }
}

/// Canonicalizes `a` for reducing over `axes` (normalized, any order). When the reduced
/// axes are not adjacent once size-1 axes are ignored, the kept axes are moved first and
/// the data is copied once.
pub fn canon<'a, T: Clone>(a: ArrayViewD<'a, T>, axes: &[usize]) -> Canon<'a, T> {
    let shape = a.shape().to_vec();
    let red = |d: usize| axes.contains(&d);
    // Groups of adjacent axes of one kind, size-1 axes skipped.
    let mut groups: Vec<bool> = Vec::new();
    for (d, &n) in shape.iter().enumerate() {
        if n == 1 {
            continue;
        }
        if groups.last() != Some(&red(d)) {
            groups.push(red(d));
        }
    }
    let red_groups = groups.iter().filter(|&&r| r).count();
    let reduced: usize = axes.iter().map(|&d| shape[d]).product();
    if red_groups <= 1 {
        let first = (0..shape.len())
            .find(|&d| red(d) && shape[d] != 1)
            .unwrap_or(shape.len());
        let last = (0..shape.len())
            .rev()
            .find(|&d| red(d) && shape[d] != 1)
            .map_or(shape.len(), |d| d + 1);
        let (outer, inner) = if first == shape.len() {
            (shape.iter().product(), 1)
        } else {
            (
                shape[..first].iter().product(),
                shape[last..].iter().product(),
            )
        };
        return Canon {
            data: if a.is_standard_layout() {
                CowArray::from(a)
            } else {
                CowArray::from(a.as_standard_layout().into_owned())
            },
            outer,
            reduced,
            inner,
        };
    }
    let mut order: Vec<usize> = (0..shape.len()).filter(|&d| !red(d)).collect();
    let outer = order.iter().map(|&d| shape[d]).product();
    order.extend(axes.iter().copied());
    let p = a.permuted_axes(IxDyn(&order));
    Canon {
        data: CowArray::from(p.as_standard_layout().into_owned()),
        outer,
        reduced,
        inner: 1,
    }
}

/// The shape left after reducing `axes`.
pub fn reduced_shape(shape: &[usize], axes: &[usize], keep_dims: bool) -> Vec<usize> {
    shape
        .iter()
        .enumerate()
        .filter_map(|(d, &n)| match (axes.contains(&d), keep_dims) {
            (false, _) => Some(n),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect()
}
