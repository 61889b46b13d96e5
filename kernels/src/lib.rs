//! The hand-written kernels of crossover's GPU backends, embedded as source text so that
//! building crossover needs no GPU toolkit.
//!
//! - [`cuda`]: PTX generated from `kernels/cuda/*.cu` by `cargo xtask kernels` (committed).
//! - [`wgsl`]: WGSL compute shaders from `kernels/wgsl/`.

pub mod cuda;
pub mod wgsl;
