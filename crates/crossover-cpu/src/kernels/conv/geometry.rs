//! Window geometry shared by convolutions and pooling: output sizes and pads from the
//! attributes, and the im2col / col2im transforms between images and patch matrices.

pub(super) use crossover_core::op::conv::axis_list;
use crossover_core::op::conv::Window;
use crossover_core::Result;
use num_traits::Zero;
use rayon::prelude::*;

/// A sliding window over the spatial axes of an image.
#[derive(Clone, Debug)]
pub(super) struct Geometry {
    /// Spatial size of the image the window slides over.
    pub image: Vec<usize>,
    /// Number of window positions per axis.
    pub grid: Vec<usize>,
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    /// Padding before each axis (negative: the window starts inside the image).
    pub pad_begin: Vec<isize>,
    /// Padding after each axis.
    pub pad_end: Vec<isize>,
}

impl Geometry {
    /// The window over `image` that a convolution or pooling with these attributes uses.
    pub fn forward(w: &Window, image: &[usize], kernel: &[usize], ceil_mode: bool) -> Result<Self> {
        let r = w.resolve(image, kernel, ceil_mode)?;
        Ok(Geometry {
            image: image.to_vec(),
            grid: r.grid,
            kernel: kernel.to_vec(),
            strides: r.strides,
            dilations: r.dilations,
            pad_begin: r.pad_begin,
            pad_end: r.pad_end,
        })
    }

    pub fn kernel_size(&self) -> usize {
        self.kernel.iter().product()
    }

    pub fn grid_size(&self) -> usize {
        self.grid.iter().product()
    }

    pub fn image_size(&self) -> usize {
        self.image.iter().product()
    }

    /// Whether the patch matrix of one channel is the image itself.
    pub fn is_pointwise(&self) -> bool {
        self.image == self.grid
            && self.kernel.iter().all(|&k| k == 1)
            && self.strides.iter().all(|&s| s == 1)
            && self.pad_begin.iter().all(|&p| p == 0)
    }

    /// Calls `f(row, line, image_offset_of_line, ow_range, off)` for each patch row (channel
    /// `c`-relative kernel tap) and grid line in `lines`: the image position of grid
    /// point `ow` on the line is `image_offset + ow * stride + off` for `ow` in `ow_range`
    /// (outside it, and for lines that miss the image, the window reads padding).
    fn walk(
        &self,
        kflat: usize,
        lines: std::ops::Range<usize>,
        mut f: impl FnMut(usize, Option<(usize, std::ops::Range<usize>, isize)>),
    ) {
        let n = self.image.len();
        let last = n - 1;
        // The kernel tap, per axis.
        let mut k = vec![0usize; n];
        let mut r = kflat;
        for d in (0..n).rev() {
            k[d] = r % self.kernel[d];
            r /= self.kernel[d];
        }
        let off = (k[last] * self.dilations[last]) as isize - self.pad_begin[last];
        let s = self.strides[last] as isize;
        let wlen = self.image[last] as isize;
        let gl = self.grid[last] as isize;
        // Grid points whose tap lands in [0, wlen): ow*s + off >= 0 and < wlen.
        let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
        let hi = if wlen - off <= 0 {
            0
        } else {
            ((wlen - off + s - 1) / s).min(gl)
        };
        let range = lo.min(hi) as usize..hi.max(0) as usize;
        let mut o = vec![0usize; last];
        for line in lines {
            let mut rem = line;
            for d in (0..last).rev() {
                o[d] = rem % self.grid[d];
                rem /= self.grid[d];
            }
            let mut base = 0isize;
            let mut inside = true;
            for d in 0..last {
                let p = (o[d] * self.strides[d] + k[d] * self.dilations[d]) as isize
                    - self.pad_begin[d];
                if p < 0 || p >= self.image[d] as isize {
                    inside = false;
                    break;
                }
                base = base * self.image[d] as isize + p;
            }
            f(
                line,
                inside.then(|| ((base * wlen) as usize, range.clone(), off)),
            );
        }
    }

    /// Fills `col` (rows: channel-major kernel taps; columns: the grid points of `lines`)
    /// from `image` (`channels` planes).
    pub fn im2col<T: Copy + Zero + Send + Sync>(
        &self,
        image: &[T],
        channels: usize,
        lines: std::ops::Range<usize>,
        col: &mut [T],
        parallel: bool,
    ) {
        let ks = self.kernel_size();
        let gl = *self.grid.last().expect("at least one spatial axis");
        let row_len = lines.len() * gl;
        let plane = self.image_size();
        let s = *self.strides.last().expect("at least one spatial axis");
        let fill = |(r, row): (usize, &mut [T])| {
            let (c, kflat) = (r / ks, r % ks);
            let img = &image[c * plane..(c + 1) * plane];
            let first = lines.start;
            self.walk(kflat, lines.clone(), |line, at| {
                let dst = &mut row[(line - first) * gl..(line - first + 1) * gl];
                match at {
                    None => dst.fill(T::zero()),
                    Some((base, range, off)) => {
                        dst[..range.start].fill(T::zero());
                        dst[range.end..].fill(T::zero());
                        let start = base as isize + off;
                        if s == 1 {
                            let a = (start + range.start as isize) as usize;
                            dst[range.clone()].copy_from_slice(&img[a..a + range.len()]);
                        } else {
                            for ow in range {
                                dst[ow] = img[(start + (ow * s) as isize) as usize];
                            }
                        }
                    }
                }
            });
        };
        if row_len == 0 {
            return;
        }
        if parallel {
            col[..channels * ks * row_len]
                .par_chunks_mut(row_len)
                .enumerate()
                .for_each(fill);
        } else {
            col[..channels * ks * row_len]
                .chunks_mut(row_len)
                .enumerate()
                .for_each(fill);
        }
    }

    /// The adjoint of [`Self::im2col`] over every grid line: adds each patch entry of
    /// `col` into the image position it was read from; parallel across channels.
    pub fn col2im<T: Copy + Send + Sync + std::ops::AddAssign>(
        &self,
        col: &[T],
        image: &mut [T],
        parallel: bool,
    ) {
        let ks = self.kernel_size();
        let gl = *self.grid.last().expect("at least one spatial axis");
        let lines = self.grid_size() / gl.max(1);
        let row_len = self.grid_size();
        let plane = self.image_size();
        let s = *self.strides.last().expect("at least one spatial axis");
        if plane == 0 || row_len == 0 {
            return;
        }
        let add = |(c, img): (usize, &mut [T])| {
            for kflat in 0..ks {
                let row = &col[(c * ks + kflat) * row_len..(c * ks + kflat + 1) * row_len];
                self.walk(kflat, 0..lines, |line, at| {
                    if let Some((base, range, off)) = at {
                        let src = &row[line * gl..(line + 1) * gl];
                        let start = base as isize + off;
                        for ow in range {
                            img[(start + (ow * s) as isize) as usize] += src[ow];
                        }
                    }
                });
            }
        };
        if parallel {
            image.par_chunks_mut(plane).enumerate().for_each(add);
        } else {
            image.chunks_mut(plane).enumerate().for_each(add);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossover_core::op::conv::AutoPad;

    fn window(pads: Option<Vec<i64>>, strides: Option<Vec<i64>>, auto_pad: AutoPad) -> Window {
        Window {
            auto_pad,
            pads,
            strides,
            ..Default::default()
        }
    }

    #[test]
    fn output_sizes_follow_onnx() {
        let g = Geometry::forward(
            &window(Some(vec![1, 1]), Some(vec![2]), AutoPad::NotSet),
            &[5],
            &[3],
            false,
        )
        .unwrap();
        assert_eq!(g.grid, vec![3]);
        let g = Geometry::forward(
            &window(None, Some(vec![2]), AutoPad::NotSet),
            &[6],
            &[3],
            true,
        )
        .unwrap();
        assert_eq!(g.grid, vec![3]);
        let g = Geometry::forward(
            &window(None, Some(vec![2]), AutoPad::SameLower),
            &[5],
            &[3],
            false,
        )
        .unwrap();
        assert_eq!((g.grid[0], g.pad_begin[0], g.pad_end[0]), (3, 1, 1));
        assert!(Geometry::forward(&window(None, None, AutoPad::Valid), &[2], &[3], false).is_err());
        assert!(Geometry::forward(
            &window(Some(vec![1]), None, AutoPad::NotSet),
            &[5],
            &[3],
            false
        )
        .is_err());
    }

    #[test]
    fn im2col_and_col2im_are_adjoint() {
        let g = Geometry::forward(
            &window(Some(vec![1, 0, 1, 1]), Some(vec![2, 1]), AutoPad::NotSet),
            &[4, 3],
            &[3, 2],
            false,
        )
        .unwrap();
        let img: Vec<f64> = (0..12).map(|v| v as f64 + 1.0).collect();
        let lines = g.grid_size() / g.grid[1];
        let mut col = vec![0.0; g.kernel_size() * g.grid_size()];
        g.im2col(&img, 1, 0..lines, &mut col, false);
        // <im2col(x), col> == <x, col2im(col)> with col = im2col(x).
        let mut back = vec![0.0; 12];
        g.col2im(&col, &mut back, false);
        let lhs: f64 = col.iter().map(|v| v * v).sum();
        let rhs: f64 = img.iter().zip(&back).map(|(a, b)| a * b).sum();
        assert_eq!(lhs, rhs);
    }
}
