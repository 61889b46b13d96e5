//! Kernel parameter blocks (`#[repr(C)]` twins of the structs in `kernels/cuda/*.cu`) and
//! the launch geometry math. Nothing here touches the driver, so it is tested everywhere.

use crossover_kernels::cuda::launch::*;

pub type Dim3 = (u32, u32, u32);

/// Largest grid extent in y and z.
const MAX_GRID_YZ: u64 = 65_535;
/// Grid-stride kernels use at most this many blocks; each thread loops over the rest.
const MAX_STRIDE_BLOCKS: u64 = 65_535 * 4;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GemmParams {
    pub a: u64,
    pub b: u64,
    pub bias: u64,
    pub c: u64,
    pub m: i64,
    pub n: i64,
    pub k: i64,
    pub sa_b: i64,
    pub sa_m: i64,
    pub sa_k: i64,
    pub sb_b: i64,
    pub sb_k: i64,
    pub sb_n: i64,
    pub sbias_b: i64,
    pub sbias_m: i64,
    pub sbias_n: i64,
    pub sc_b: i64,
    pub sc_m: i64,
    pub alpha: f32,
    pub beta: f32,
    pub act: i32,
    pub pad: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BinaryParams {
    pub a: u64,
    pub b: u64,
    pub y: u64,
    pub n: i64,
    pub dims: [i64; MAX_RANK],
    pub sa: [i64; MAX_RANK],
    pub sb: [i64; MAX_RANK],
    pub rank: i32,
    pub op: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CopyParams {
    pub src: u64,
    pub dst: u64,
    pub n: i64,
    pub dims: [i64; MAX_RANK],
    pub ss: [i64; MAX_RANK],
    pub ds: [i64; MAX_RANK],
    pub rank: i32,
    pub pad: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ConvParams {
    pub x: u64,
    pub w: u64,
    pub bias: u64,
    pub y: u64,
    pub n: i64,
    pub c: i64,
    pub h: i64,
    pub w_: i64,
    pub oc: i64,
    pub oh: i64,
    pub ow: i64,
    pub kh: i64,
    pub kw: i64,
    pub sh: i64,
    pub sw: i64,
    pub ph: i64,
    pub pw: i64,
    pub dh: i64,
    pub dw: i64,
    pub groups: i64,
    pub act: i32,
    pub pad: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolParams {
    pub x: u64,
    pub y: u64,
    pub nc: i64,
    pub h: i64,
    pub w: i64,
    pub oh: i64,
    pub ow: i64,
    pub kh: i64,
    pub kw: i64,
    pub sh: i64,
    pub sw: i64,
    pub ph: i64,
    pub pw: i64,
    pub dh: i64,
    pub dw: i64,
    pub peh: i64,
    pub pew: i64,
    pub max: i32,
    pub count_pad: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct AttnParams {
    pub q: u64,
    pub k: u64,
    pub v: u64,
    pub mask: u64,
    pub o: u64,
    pub b: i64,
    pub h: i64,
    pub sq: i64,
    pub sk: i64,
    pub d: i64,
    pub qs: [i64; 4],
    pub ks: [i64; 4],
    pub vs: [i64; 4],
    pub os: [i64; 4],
    pub ms: [i64; 4],
    pub scale: f32,
    pub causal: i32,
}

/// Grid for a grid-stride kernel over `n` items; `None` when there is nothing to do.
pub fn stride_grid(n: usize) -> Option<(Dim3, Dim3)> {
    if n == 0 {
        return None;
    }
    let t = ELEMENTWISE_THREADS as u64;
    let blocks = (n as u64).div_ceil(t).min(MAX_STRIDE_BLOCKS);
    Some(((blocks as u32, 1, 1), (ELEMENTWISE_THREADS, 1, 1)))
}

/// Grid of a GEMM-shaped kernel: 64×64 output tiles, one z slice per batch (or group).
/// `Err` names the extent that exceeds the hardware limit.
pub fn gemm_grid(m: usize, n: usize, batch: usize) -> Result<Option<Dim3>, String> {
    if m == 0 || n == 0 || batch == 0 {
        return Ok(None);
    }
    let t = GEMM_TILE as u64;
    let (gx, gy) = ((n as u64).div_ceil(t), (m as u64).div_ceil(t));
    if gy > MAX_GRID_YZ {
        return Err(format!(
            "{m} rows exceed the GEMM grid ({} tiles max)",
            MAX_GRID_YZ
        ));
    }
    if batch as u64 > MAX_GRID_YZ {
        return Err(format!(
            "batch of {batch} exceeds the GEMM grid ({MAX_GRID_YZ} max)"
        ));
    }
    if gx > u32::MAX as u64 {
        return Err(format!("{n} columns exceed the GEMM grid"));
    }
    Ok(Some((gx as u32, gy as u32, batch as u32)))
}

/// Grid of the per-row kernels (softmax, layernorm): one block per row, the rest by loop.
pub fn row_grid(rows: usize) -> Option<(Dim3, Dim3)> {
    (rows > 0).then(|| {
        let blocks = (rows as u64).min(MAX_STRIDE_BLOCKS);
        ((blocks as u32, 1, 1), (ROW_THREADS, 1, 1))
    })
}

/// Grid of `sdpa_f32`: one warp per query row.
pub fn attention_grid(rows: usize) -> Result<Option<(Dim3, Dim3)>, String> {
    if rows == 0 {
        return Ok(None);
    }
    let per_block = (ATTENTION_THREADS / 32) as u64;
    let blocks = (rows as u64).div_ceil(per_block);
    if blocks > u32::MAX as u64 {
        return Err(format!("{rows} attention rows exceed the grid"));
    }
    Ok(Some(((blocks as u32, 1, 1), (ATTENTION_THREADS, 1, 1))))
}

/// Row-major strides of `shape`, in elements.
pub fn strides(shape: &[usize]) -> Vec<i64> {
    let mut s = vec![1i64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1] as i64;
    }
    s
}

/// The numpy broadcast of two shapes, or `None` if they do not broadcast.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    (0..r)
        .map(|i| {
            let da = if i + a.len() >= r {
                a[i + a.len() - r]
            } else {
                1
            };
            let db = if i + b.len() >= r {
                b[i + b.len() - r]
            } else {
                1
            };
            match (da, db) {
                (x, y) if x == y => Some(x),
                (1, y) => Some(y),
                (x, 1) => Some(x),
                _ => None,
            }
        })
        .collect()
}

/// Strides that read `shape` (contiguous) as if it had the broadcast shape `out`: 0 on
/// the axes it broadcasts along.
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<i64> {
    let own = strides(shape);
    let lead = out.len() - shape.len();
    (0..out.len())
        .map(|i| {
            if i < lead || shape[i - lead] == 1 && out[i] != 1 {
                0
            } else {
                own[i - lead]
            }
        })
        .collect()
}

/// Merges adjacent axes that are contiguous in every stride set, so that broadcasting
/// and copies stay within `MAX_RANK` and index math stays short. Returns the merged dims
/// and one merged stride list per input.
pub fn coalesce(dims: &[usize], sets: &[Vec<i64>]) -> (Vec<usize>, Vec<Vec<i64>>) {
    let mut d: Vec<usize> = Vec::new();
    let mut s: Vec<Vec<i64>> = vec![Vec::new(); sets.len()];
    for i in 0..dims.len() {
        if dims[i] == 1 {
            continue;
        }
        let mergeable = !d.is_empty()
            && sets
                .iter()
                .zip(&s)
                .all(|(set, out)| out[out.len() - 1] == set[i] * dims[i] as i64);
        if mergeable {
            let last = d.len() - 1;
            d[last] *= dims[i];
            for (set, out) in sets.iter().zip(s.iter_mut()) {
                let l = out.len() - 1;
                out[l] = set[i];
            }
        } else {
            d.push(dims[i]);
            for (set, out) in sets.iter().zip(s.iter_mut()) {
                out.push(set[i]);
            }
        }
    }
    (d, s)
}

/// Pads dims and strides to the kernels' fixed rank arrays.
pub fn fixed<T: Copy + Default>(v: &[T]) -> Option<[T; MAX_RANK]> {
    if v.len() > MAX_RANK {
        return None;
    }
    let mut a = [T::default(); MAX_RANK];
    a[..v.len()].copy_from_slice(v);
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_blocks_have_the_cuda_layout() {
        // Sizes of the C structs: 8-byte fields, then the trailing 4-byte ones.
        assert_eq!(std::mem::size_of::<GemmParams>(), 4 * 8 + 14 * 8 + 4 * 4);
        assert_eq!(std::mem::size_of::<BinaryParams>(), 4 * 8 + 18 * 8 + 8);
        assert_eq!(std::mem::size_of::<CopyParams>(), 3 * 8 + 18 * 8 + 8);
        assert_eq!(std::mem::size_of::<ConvParams>(), 4 * 8 + 16 * 8 + 8);
        assert_eq!(std::mem::size_of::<PoolParams>(), 2 * 8 + 15 * 8 + 8);
        assert_eq!(
            std::mem::size_of::<AttnParams>(),
            5 * 8 + 5 * 8 + 20 * 8 + 8
        );
    }

    #[test]
    fn gemm_grid_tiles_and_limits() {
        assert_eq!(gemm_grid(1, 1, 1), Ok(Some((1, 1, 1))));
        assert_eq!(gemm_grid(64, 65, 3), Ok(Some((2, 1, 3))));
        assert_eq!(gemm_grid(129, 64, 1), Ok(Some((1, 3, 1))));
        assert_eq!(gemm_grid(0, 5, 1), Ok(None));
        assert_eq!(gemm_grid(5, 5, 0), Ok(None));
        assert!(gemm_grid(64 * 65_536, 1, 1).is_err());
        assert!(gemm_grid(1, 1, 65_536).is_err());
    }

    #[test]
    fn stride_and_row_grids() {
        assert_eq!(stride_grid(0), None);
        assert_eq!(stride_grid(1), Some(((1, 1, 1), (256, 1, 1))));
        assert_eq!(stride_grid(257).unwrap().0, (2, 1, 1));
        assert_eq!(
            stride_grid(usize::MAX / 2).unwrap().0 .0 as u64,
            MAX_STRIDE_BLOCKS
        );
        assert_eq!(row_grid(0), None);
        assert_eq!(row_grid(3).unwrap().0, (3, 1, 1));
        assert_eq!(attention_grid(5), Ok(Some(((2, 1, 1), (128, 1, 1)))));
    }

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast(&[2, 1, 3], &[4, 1]), Some(vec![2, 4, 3]));
        assert_eq!(broadcast(&[], &[3]), Some(vec![3]));
        assert_eq!(broadcast(&[2], &[3]), None);
        assert_eq!(broadcast(&[0, 3], &[1, 3]), Some(vec![0, 3]));
        assert_eq!(broadcast_strides(&[4, 1], &[2, 4, 3]), vec![0, 1, 0]);
        assert_eq!(broadcast_strides(&[2, 4, 3], &[2, 4, 3]), vec![12, 3, 1]);
    }

    #[test]
    fn coalescing_merges_contiguous_axes_only() {
        let out = [2, 3, 4];
        let (d, s) = coalesce(&out, &[strides(&out), broadcast_strides(&[1, 1, 4], &out)]);
        assert_eq!(d, vec![6, 4]);
        assert_eq!(s, vec![vec![4, 1], vec![0, 1]]);
        let (d, s) = coalesce(&[2, 3], &[vec![1, 2]]); // transposed: stays 2-D
        assert_eq!((d, s), (vec![2, 3], vec![vec![1, 2]]));
        let (d, _) = coalesce(&[1, 1], &[vec![1, 1]]);
        assert!(d.is_empty());
        assert!(fixed(&[1i64; 7]).is_none());
    }
}
