//! Adapter discovery: which GPUs wgpu reaches, in the order crossover prefers them.

use std::fmt;
use std::sync::OnceLock;

/// What kind of device an adapter drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AdapterKind {
    DiscreteGpu,
    IntegratedGpu,
    VirtualGpu,
    Other,
    /// A software rasteriser on the CPU (Mesa's llvmpipe, SwiftShader, WARP).
    Cpu,
}

impl fmt::Display for AdapterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AdapterKind::DiscreteGpu => "discrete GPU",
            AdapterKind::IntegratedGpu => "integrated GPU",
            AdapterKind::VirtualGpu => "virtual GPU",
            AdapterKind::Other => "other",
            AdapterKind::Cpu => "software (CPU)",
        })
    }
}

impl From<wgpu::DeviceType> for AdapterKind {
    fn from(t: wgpu::DeviceType) -> Self {
        match t {
            wgpu::DeviceType::DiscreteGpu => AdapterKind::DiscreteGpu,
            wgpu::DeviceType::IntegratedGpu => AdapterKind::IntegratedGpu,
            wgpu::DeviceType::VirtualGpu => AdapterKind::VirtualGpu,
            wgpu::DeviceType::Cpu => AdapterKind::Cpu,
            wgpu::DeviceType::Other => AdapterKind::Other,
        }
    }
}

/// Which adapters [`adapters`] lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AdapterSelection {
    /// Hardware adapters; software ones only when there is no hardware adapter at all.
    #[default]
    Auto,
    /// Hardware adapters first, then software ones.
    IncludeSoftware,
}

/// One adapter as crossover names it: `wgpu:{index}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterDesc {
    /// Position in the list [`adapters`] returned; the `N` of `wgpu:N`.
    pub index: usize,
    pub name: String,
    /// `vulkan`, `metal`, `dx12`, …
    pub backend: String,
    pub kind: AdapterKind,
    /// A software implementation (llvmpipe and the like): correct, never fast.
    pub software: bool,
    pub driver: String,
}

impl fmt::Display for AdapterDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wgpu:{} {} ({}, {})",
            self.index, self.name, self.backend, self.kind
        )?;
        if !self.driver.is_empty() {
            write!(f, " driver {}", self.driver)?;
        }
        Ok(())
    }
}

/// The process-wide wgpu instance; creating one loads the Vulkan loader and friends.
pub(crate) fn instance() -> &'static wgpu::Instance {
    static INSTANCE: OnceLock<wgpu::Instance> = OnceLock::new();
    INSTANCE.get_or_init(|| {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        // Only the native compute-capable APIs: GL has no storage buffers in compute on
        // many drivers and would list the same GPU twice.
        if std::env::var_os("WGPU_BACKEND").is_none() {
            desc.backends = wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
        }
        wgpu::Instance::new(desc)
    })
}

fn is_software(info: &wgpu::AdapterInfo) -> bool {
    if info.device_type == wgpu::DeviceType::Cpu {
        return true;
    }
    let name = info.name.to_ascii_lowercase();
    [
        "llvmpipe",
        "lavapipe",
        "swiftshader",
        "softpipe",
        "microsoft basic render",
    ]
    .iter()
    .any(|s| name.contains(s))
}

/// Adapters in preference order (discrete, integrated, virtual, other, software; then
/// by backend), filtered by `selection`.
pub(crate) fn ordered(selection: AdapterSelection) -> Vec<(AdapterDesc, wgpu::Adapter)> {
    let adapters = pollster::block_on(instance().enumerate_adapters(wgpu::Backends::all()));
    let mut all: Vec<(AdapterDesc, wgpu::Adapter)> = adapters
        .into_iter()
        .map(|a| {
            let info = a.get_info();
            let software = is_software(&info);
            let kind = if software {
                AdapterKind::Cpu
            } else {
                AdapterKind::from(info.device_type)
            };
            let desc = AdapterDesc {
                index: 0,
                name: info.name.clone(),
                backend: info.backend.to_str().to_string(),
                kind,
                software,
                driver: [info.driver.as_str(), info.driver_info.as_str()]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" "),
            };
            (desc, a)
        })
        .collect();
    all.sort_by(|(a, _), (b, _)| {
        (a.software, a.kind, &a.backend, &a.name).cmp(&(b.software, b.kind, &b.backend, &b.name))
    });
    let has_hardware = all.iter().any(|(d, _)| !d.software);
    if selection == AdapterSelection::Auto && has_hardware {
        all.retain(|(d, _)| !d.software);
    }
    for (i, (d, _)) in all.iter_mut().enumerate() {
        d.index = i;
    }
    all
}

/// The adapters wgpu reaches, best first; `wgpu:N` is the `N`th of this list.
///
/// Software adapters (llvmpipe) appear only with [`AdapterSelection::IncludeSoftware`]
/// or when no hardware adapter exists. An empty list means no Vulkan/Metal/DX12 driver
/// was found (on Debian: `apt-get install mesa-vulkan-drivers` gives llvmpipe).
pub fn adapters(selection: AdapterSelection) -> Vec<AdapterDesc> {
    ordered(selection).into_iter().map(|(d, _)| d).collect()
}
