//! The `devices` and `policy` options, parsed into the scheduler's own types.
//!
//! Names follow the design: devices `auto`, `cpu`, `cuda:N`, `wgpu:N`; policies
//! `latency`, `throughput`, `cost` (with prices and a p99 target), `round-robin` and
//! `pinned:<device>`.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use crossover::{DeviceId, Policy, Selection};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

use crate::errors::{invalid, to_py};

/// The devices a session may use, from `"auto"`, one name, or a list of names.
pub fn parse_devices(devices: &Bound<'_, PyAny>) -> PyResult<Selection> {
    let names: Vec<String> = if let Ok(s) = devices.cast::<PyString>() {
        vec![s.to_string()]
    } else if devices.is_instance_of::<PyList>() || devices.is_instance_of::<PyTuple>() {
        devices
            .try_iter()?
            .map(|d| {
                d?.extract::<String>().map_err(|_| {
                    invalid("devices: every entry must be a device name such as \"cpu\"")
                })
            })
            .collect::<PyResult<_>>()?
    } else {
        return Err(invalid(format!(
            "devices must be \"auto\", a device name or a list of names, got {}",
            devices.get_type().name()?
        )));
    };
    if names.is_empty() {
        return Err(invalid(
            "devices is empty: name at least one device, or \"auto\"",
        ));
    }
    if names.iter().any(|n| n == "auto") {
        if names.len() > 1 {
            return Err(invalid(
                "devices: \"auto\" cannot be combined with other names",
            ));
        }
        return Ok(Selection::Auto);
    }
    let mut out: Vec<DeviceId> = Vec::new();
    for name in &names {
        let id = DeviceId::from_str(name).map_err(to_py)?;
        if out.contains(&id) {
            return Err(invalid(format!("devices: {id} is named twice")));
        }
        out.push(id);
    }
    Ok(Selection::List(out))
}

/// The routing policy; `cost` needs `prices` (dollars per hour per device) and `p99_ms`.
pub fn parse_policy(
    policy: &str,
    prices: Option<BTreeMap<String, f64>>,
    p99_ms: Option<f64>,
) -> PyResult<Policy> {
    if policy != "cost" {
        if prices.is_some() || p99_ms.is_some() {
            return Err(invalid(format!(
                "prices and p99_ms belong to the cost policy, not {policy:?}"
            )));
        }
        return Policy::from_str(policy).map_err(to_py);
    }
    let (Some(prices), Some(p99_ms)) = (prices, p99_ms) else {
        return Err(invalid(
            "the cost policy needs prices={device: dollars_per_hour} and p99_ms",
        ));
    };
    if !(p99_ms > 0.0 && p99_ms.is_finite()) {
        return Err(invalid(format!(
            "p99_ms must be a positive number, got {p99_ms}"
        )));
    }
    let text: Vec<String> = prices.iter().map(|(d, p)| format!("{d}={p}")).collect();
    Ok(Policy::Cost {
        prices: crossover::sched::parse_prices(&text.join(",")).map_err(to_py)?,
        p99_target: Duration::from_secs_f64(p99_ms / 1e3),
    })
}
