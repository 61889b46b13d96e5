//! The scheduler: what each device costs at each batch size, and where the GPU starts to
//! beat the CPU.
//!
//! [`curve`] turns calibration measurements into a [`CostCurve`] per device and answers
//! the crossover question between two of them with the breakdown that explains it.

pub mod curve;

pub use curve::{crossover, Breakdown, CostCurve, Crossover, Sample};
