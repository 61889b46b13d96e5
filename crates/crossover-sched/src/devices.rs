//! Device discovery and selection: which devices this machine has, which of them a
//! session uses, and why the others are absent.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use crossover_core::{invalid, Backend, DeviceId, DeviceInfo, DeviceKind, Error, Result};
use crossover_cpu::CpuBackend;
use crossover_wgpu::AdapterSelection;

/// A device that can run models.
#[derive(Clone)]
pub struct Found {
    pub info: DeviceInfo,
    pub backend: Arc<dyn Backend>,
    /// A software rasteriser posing as a GPU (llvmpipe): used only when asked for, or
    /// when no other GPU exists.
    pub software: bool,
}

impl fmt::Debug for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Found")
            .field("info", &self.info)
            .field("software", &self.software)
            .finish()
    }
}

/// A kind of device this machine lacks or cannot use, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Missing {
    pub kind: DeviceKind,
    pub reason: String,
}

/// What discovery saw.
#[derive(Clone, Debug, Default)]
pub struct Discovery {
    pub found: Vec<Found>,
    pub missing: Vec<Missing>,
}

const KINDS: [DeviceKind; 3] = [DeviceKind::Cpu, DeviceKind::Cuda, DeviceKind::Wgpu];

/// Every device on this machine: the CPU always, then CUDA devices (when the driver loads;
/// `CUDA_VISIBLE_DEVICES` honoured) and wgpu adapters (software ones flagged). Devices are
/// opened once per process and shared by every session.
pub fn discover() -> Discovery {
    discover_kinds(&KINDS)
}

/// The CPU and the devices of `kinds`: a program that names only the CPU never loads a
/// GPU driver (nor pays for it, nor sees its warnings).
pub fn discover_kinds(kinds: &[DeviceKind]) -> Discovery {
    static PROBED: [OnceLock<Discovery>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let mut d = Discovery::default();
    for (i, kind) in KINDS.into_iter().enumerate() {
        if kind == DeviceKind::Cpu || kinds.contains(&kind) {
            let p = PROBED[i].get_or_init(|| probe(kind));
            d.found.extend(p.found.iter().cloned());
            d.missing.extend(p.missing.iter().cloned());
        }
    }
    d
}

/// The devices a session with `selection` uses, less `exclude`, probing only the kinds
/// it can use (`CROSSOVER_DEVICES` applied).
pub fn select(selection: &Selection, exclude: &[DeviceId]) -> Result<Vec<Found>> {
    let selection = effective(selection)?;
    let kinds: Vec<DeviceKind> = match &selection {
        Selection::Auto => KINDS.to_vec(),
        Selection::List(ids) => ids.iter().map(|id| id.kind).collect(),
    };
    discover_kinds(&kinds).select(&selection, exclude)
}

/// `selection` with `CROSSOVER_DEVICES` narrowing `Auto`.
fn effective(selection: &Selection) -> Result<Selection> {
    match (selection, std::env::var("CROSSOVER_DEVICES")) {
        (Selection::Auto, Ok(v)) if !v.trim().is_empty() && v.trim() != "auto" => v
            .parse::<Selection>()
            .map_err(|e| invalid!("CROSSOVER_DEVICES={v:?}: {e}")),
        _ => Ok(selection.clone()),
    }
}

fn probe(kind: DeviceKind) -> Discovery {
    let mut d = Discovery::default();
    match kind {
        DeviceKind::Cpu => {
            let cpu = CpuBackend::new();
            d.found.push(Found {
                info: cpu.info(),
                backend: Arc::new(cpu),
                software: false,
            });
        }
        DeviceKind::Cuda => probe_cuda(&mut d),
        DeviceKind::Wgpu => probe_wgpu(&mut d),
    }
    d
}

fn probe_cuda(d: &mut Discovery) {
    match crossover_cuda::devices() {
        Ok(list) => {
            for info in list {
                match crossover_cuda::CudaBackend::new(info.id.index) {
                    Ok(b) => d.found.push(Found {
                        info: b.info(),
                        backend: Arc::new(b),
                        software: false,
                    }),
                    Err(e) => d.missing.push(Missing {
                        kind: DeviceKind::Cuda,
                        reason: format!("{}: {e}", info.id),
                    }),
                }
            }
        }
        Err(e) => d.missing.push(Missing {
            kind: DeviceKind::Cuda,
            reason: e.to_string(),
        }),
    }
}

fn probe_wgpu(d: &mut Discovery) {
    let adapters = crossover_wgpu::adapters(AdapterSelection::IncludeSoftware);
    if adapters.is_empty() {
        d.missing.push(Missing {
            kind: DeviceKind::Wgpu,
            reason: "no wgpu adapter: no Vulkan, Metal or DX12 driver (on Linux without a GPU, \
                     mesa-vulkan-drivers gives a software one)"
                .into(),
        });
    }
    for a in adapters {
        match crossover_wgpu::WgpuBackend::new(a.index, AdapterSelection::IncludeSoftware) {
            Ok(b) => d.found.push(Found {
                info: b.info(),
                backend: Arc::new(b),
                software: a.software,
            }),
            Err(e) => d.missing.push(Missing {
                kind: DeviceKind::Wgpu,
                reason: format!("{a}: {e}"),
            }),
        }
    }
}

/// Which devices a session uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Selection {
    /// Every device found, GPUs before the CPU; software GPUs only when no other GPU
    /// exists. The environment variable `CROSSOVER_DEVICES` (a list such as `cpu`)
    /// narrows it for every program on the machine, as `CUDA_VISIBLE_DEVICES` does.
    #[default]
    Auto,
    /// Exactly these, in this order (software GPUs included when named).
    List(Vec<DeviceId>),
}

impl FromStr for Selection {
    type Err = Error;

    /// `auto`, or device names separated by commas: `cuda:0,cpu`.
    fn from_str(s: &str) -> Result<Selection> {
        if s.trim() == "auto" {
            return Ok(Selection::Auto);
        }
        let list = s
            .split(',')
            .map(|d| d.trim().parse())
            .collect::<Result<Vec<DeviceId>>>()?;
        if list.is_empty() {
            return Err(invalid!(
                "no devices given: use auto or names such as cpu,cuda:0"
            ));
        }
        Ok(Selection::List(list))
    }
}

impl Discovery {
    /// The devices `selection` names, less `exclude`, in the order they will be listed.
    pub fn select(&self, selection: &Selection, exclude: &[DeviceId]) -> Result<Vec<Found>> {
        let selection = &effective(selection)?;
        let chosen: Vec<Found> = match selection {
            Selection::Auto => {
                let hardware_gpu = self
                    .found
                    .iter()
                    .any(|f| f.info.id.kind != DeviceKind::Cpu && !f.software);
                let mut all: Vec<Found> = self
                    .found
                    .iter()
                    .filter(|f| !(f.software && hardware_gpu))
                    .cloned()
                    .collect();
                // GPUs first: listing order is the tie-break order for routing.
                all.sort_by_key(|f| (f.info.id.kind == DeviceKind::Cpu, f.info.id.clone()));
                all
            }
            Selection::List(ids) => {
                let mut out = Vec::new();
                for id in ids {
                    if out.iter().any(|f: &Found| &f.info.id == id) {
                        return Err(invalid!("device {id} is listed twice"));
                    }
                    match self.found.iter().find(|f| &f.info.id == id) {
                        Some(f) => out.push(f.clone()),
                        None => return Err(self.absent(id)),
                    }
                }
                out
            }
        };
        let chosen: Vec<Found> = chosen
            .into_iter()
            .filter(|f| !exclude.contains(&f.info.id))
            .collect();
        if chosen.is_empty() {
            return Err(invalid!(
                "no device left to run on (found {}; excluded {})",
                names(self.found.iter().map(|f| &f.info.id)),
                names(exclude.iter())
            ));
        }
        Ok(chosen)
    }

    fn absent(&self, id: &DeviceId) -> Error {
        let why = self
            .missing
            .iter()
            .find(|m| m.kind == id.kind)
            .map(|m| format!(": {}", m.reason))
            .unwrap_or_default();
        invalid!(
            "device {id} is not on this machine{why} (found {})",
            names(self.found.iter().map(|f| &f.info.id))
        )
    }
}

fn names<'a>(ids: impl Iterator<Item = &'a DeviceId>) -> String {
    let v: Vec<String> = ids.map(|d| d.to_string()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_parses_and_names_what_is_missing() {
        assert_eq!("auto".parse::<Selection>().unwrap(), Selection::Auto);
        let list: Selection = "cpu, cuda:1".parse().unwrap();
        assert_eq!(
            list,
            Selection::List(vec![DeviceId::CPU, "cuda:1".parse().unwrap()])
        );
        let cpu = CpuBackend::new();
        let d = Discovery {
            found: vec![Found {
                info: cpu.info(),
                backend: Arc::new(cpu),
                software: false,
            }],
            missing: vec![Missing {
                kind: DeviceKind::Cuda,
                reason: "CUDA not available: no driver".into(),
            }],
        };
        let e = d.select(&list, &[]).unwrap_err().to_string();
        assert!(e.contains("cuda:1") && e.contains("no driver"), "{e}");
        assert_eq!(d.select(&Selection::Auto, &[]).unwrap().len(), 1);
        let e = d
            .select(&Selection::Auto, &[DeviceId::CPU])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no device left"), "{e}");
        assert!(d
            .select(&Selection::List(vec![DeviceId::CPU, DeviceId::CPU]), &[])
            .is_err());
    }

    #[test]
    fn naming_only_the_cpu_probes_no_gpu() {
        let d = discover_kinds(&[DeviceKind::Cpu]);
        assert_eq!(d.found.len(), 1);
        assert_eq!(d.found[0].info.id, DeviceId::CPU);
        assert!(d.missing.is_empty(), "{:?}", d.missing);
        let chosen = select(&Selection::List(vec![DeviceId::CPU]), &[]).unwrap();
        assert_eq!(chosen.len(), 1);
    }
}
