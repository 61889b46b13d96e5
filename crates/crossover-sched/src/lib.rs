//! The scheduler: which devices a session has, what each costs at each batch size, and
//! which one serves each request.
//!
//! - [`devices`]: discovery and selection (`auto`, `cuda:0,cpu`, exclusions).
//! - [`profile`]: calibration at batch sizes 1, 2, 4, … and the on-disk profile cache.
//! - [`curve`]: cost curves, the crossover batch size and its breakdown.
//! - [`policy`]: latency, throughput, cost and pinned routing, as pure functions.
//! - [`scheduler`]: per-device queues with dynamic batching, routing, faults, counters.
//! - [`batch`]: joining requests into one run and cutting the outputs back.
//! - [`sim`]: a discrete-event simulation of the same routing and batching over a fleet.

pub mod batch;
pub mod curve;
pub mod devices;
pub mod policy;
pub mod profile;
pub mod scheduler;
pub mod sim;
pub mod stats;

pub use batch::BatchAxis;
pub use curve::{crossover, Breakdown, CostCurve, Crossover, Sample};
pub use devices::{discover, discover_kinds, select, Discovery, Found, Missing, Selection};
pub use policy::{parse_prices, Policy, Route};
pub use profile::{calibrate, CalibrationOptions, Profile, ProfileCache, Step};
pub use scheduler::{DeviceSlot, Overhead, QueueConfig, Reply, RunInfo, Scheduler, Ticket};
pub use stats::{DeviceStats, Percentiles};
