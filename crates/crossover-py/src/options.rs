//! The `devices` and `policy` options, checked against what this build can schedule.
//!
//! Today a session runs on one device, the CPU, under the `latency` policy; the scheduler
//! widens both. Names follow the design: `auto`, `cpu`, `cuda:N`, `wgpu:N`;
//! `latency`, `throughput`, `cost`.

use std::str::FromStr;

use crossover::{DeviceId, DeviceKind};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

use crate::errors::{invalid, Unsupported};

/// The devices a session may use, from `"auto"`, one name, or a list of names.
pub fn parse_devices(devices: &Bound<'_, PyAny>) -> PyResult<Vec<DeviceId>> {
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
    let mut out: Vec<DeviceId> = Vec::new();
    for name in &names {
        if name == "auto" {
            if names.len() > 1 {
                return Err(invalid(
                    "devices: \"auto\" cannot be combined with other names",
                ));
            }
            // Every device this build can run on.
            return Ok(vec![DeviceId::CPU]);
        }
        let id = DeviceId::from_str(name).map_err(crate::errors::to_py)?;
        if id.kind != DeviceKind::Cpu {
            return Err(Unsupported::new_err(format!(
                "device {id} is not available in this build of crossover; it runs on \"cpu\""
            )));
        }
        if out.contains(&id) {
            return Err(invalid(format!("devices: {id} is named twice")));
        }
        out.push(id);
    }
    Ok(out)
}

/// The scheduling policy; only `latency` exists while a session has one device.
pub fn check_policy(policy: &str) -> PyResult<()> {
    match policy {
        "latency" => Ok(()),
        "throughput" | "cost" => Err(Unsupported::new_err(format!(
            "policy {policy:?} is not available in this build of crossover; use \"latency\""
        ))),
        _ => Err(invalid(format!(
            "unknown policy {policy:?}: use \"latency\", \"throughput\" or \"cost\""
        ))),
    }
}
