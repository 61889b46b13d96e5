//! One opened adapter: device, queue, limits, and the compute pipelines of every shader,
//! created once per device and shared by every model compiled for it.

use std::sync::{Arc, Mutex};

use crossover_core::{Error, Result};
use crossover_kernels::wgsl::{self, Shader};

use crate::adapter::AdapterDesc;

pub(crate) struct Pipeline {
    pub shader: Shader,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

pub(crate) struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub limits: wgpu::Limits,
    pub desc: AdapterDesc,
    /// The device times compute passes with timestamp queries (`TIMESTAMP_QUERY`).
    pub timestamps: bool,
    /// Nanoseconds per timestamp tick.
    pub tick_ns: f64,
    /// f16 tensors run on the device (`SHADER_F16`: the conversion kernels exist).
    pub f16: bool,
    pub pipelines: Vec<Pipeline>,
    /// Bound where a kernel's optional input (a bias) is absent.
    pub dummy: Arc<wgpu::Buffer>,
    /// Validation and out-of-memory errors wgpu reports outside an error scope.
    errors: Arc<Mutex<Vec<String>>>,
}

impl Gpu {
    pub fn open(desc: AdapterDesc, adapter: &wgpu::Adapter) -> Result<Gpu> {
        let limits = adapter.limits();
        let required_features =
            adapter.features() & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SHADER_F16);
        let timestamps = required_features.contains(wgpu::Features::TIMESTAMP_QUERY);
        let f16 = required_features.contains(wgpu::Features::SHADER_F16);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("crossover"),
            required_features,
            // The adapter's own limits, not WebGPU's defaults: bigger buffers fit.
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| device_error(&desc, format!("cannot open the device: {e}")))?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let f16_shaders = if f16 { wgsl::F16 } else { &[] };
        let mut pipelines = Vec::new();
        for &shader in wgsl::ALL.iter().chain(f16_shaders) {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(shader.name),
                source: wgpu::ShaderSource::Wgsl(shader.source.into()),
            });
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(shader.name),
                layout: None,
                module: &module,
                entry_point: Some(shader.entry_point),
                compilation_options: Default::default(),
                cache: None,
            });
            let layout = pipeline.get_bind_group_layout(0);
            pipelines.push(Pipeline {
                shader,
                pipeline,
                layout,
            });
        }
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(device_error(
                &desc,
                format!("building the compute pipelines: {e}"),
            ));
        }
        let dummy = Arc::new(device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("absent input"),
            size: 4,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        }));
        let tick_ns = f64::from(queue.get_timestamp_period());
        Ok(Gpu {
            device,
            queue,
            limits,
            desc,
            timestamps,
            tick_ns,
            f16,
            pipelines,
            dummy,
            errors,
        })
    }

    pub fn pipeline(&self, shader: &Shader) -> (usize, &Pipeline) {
        let i = self
            .pipelines
            .iter()
            .position(|p| p.shader.name == shader.name)
            .expect("every shader the device can run has a pipeline");
        (i, &self.pipelines[i])
    }

    pub fn error(&self, message: impl Into<String>) -> Error {
        device_error(&self.desc, message.into())
    }

    /// A buffer of at least `bytes` (rounded up to 4, at least 4), checked against the
    /// adapter's limits so an oversized model fails with a clear error, not a lost device.
    pub fn buffer(
        &self,
        bytes: u64,
        usage: wgpu::BufferUsages,
        what: &str,
    ) -> Result<wgpu::Buffer> {
        let size = padded(bytes);
        if size > self.limits.max_buffer_size {
            return Err(self.error(format!(
                "{what} needs a buffer of {size} bytes; this adapter allows at most {} (max_buffer_size)",
                self.limits.max_buffer_size
            )));
        }
        if usage.contains(wgpu::BufferUsages::STORAGE)
            && size > self.limits.max_storage_buffer_binding_size
        {
            return Err(self.error(format!(
                "{what} needs a storage binding of {size} bytes; this adapter allows at most {} (max_storage_buffer_binding_size)",
                self.limits.max_storage_buffer_binding_size
            )));
        }
        Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(what),
            size,
            usage,
            mapped_at_creation: false,
        }))
    }

    /// Waits for all submitted work.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| self.error(format!("waiting for the queue: {e}")))?;
        self.check()
    }

    /// Maps `(buffer, bytes)` for reading once the queue has run, and waits for it.
    pub fn map_read(&self, buffers: &[(&wgpu::Buffer, u64)], what: &str) -> Result<()> {
        let failed = Arc::new(Mutex::new(None::<String>));
        for &(buf, bytes) in buffers {
            let f = failed.clone();
            buf.map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
                if let Err(e) = r {
                    if let Ok(mut f) = f.lock() {
                        *f = Some(e.to_string());
                    }
                }
            });
        }
        self.wait()?;
        match failed.lock().ok().and_then(|mut f| f.take()) {
            Some(e) => Err(self.error(format!("{what}: {e}"))),
            None => Ok(()),
        }
    }

    /// Fails with the first error wgpu reported since the last check.
    pub fn check(&self) -> Result<()> {
        let mut errors = self
            .errors
            .lock()
            .map_err(|_| self.error("error log poisoned"))?;
        if errors.is_empty() {
            return Ok(());
        }
        let first = errors.remove(0);
        errors.clear();
        Err(self.error(first))
    }

    /// Workgroup counts for `n` invocations of a 256-wide 1-D kernel, folded into a 2-D
    /// grid when one dimension would exceed the adapter's limit.
    pub fn grid_1d(&self, n: usize, what: &str) -> Result<(u32, u32, u32)> {
        let groups = n.div_ceil(wgsl::WORKGROUP_1D as usize).max(1);
        let max = self.limits.max_compute_workgroups_per_dimension as usize;
        let x = groups.min(max);
        let y = groups.div_ceil(x);
        if y > max {
            return Err(self.error(format!(
                "{what}: {n} elements exceed the dispatch limit of this adapter"
            )));
        }
        Ok((x as u32, y as u32, 1))
    }

    /// Workgroups for one workgroup per row.
    pub fn grid_rows(&self, rows: usize, what: &str) -> Result<(u32, u32, u32)> {
        let max = self.limits.max_compute_workgroups_per_dimension as usize;
        let x = rows.clamp(1, max);
        let y = rows.div_ceil(x).max(1);
        if y > max {
            return Err(self.error(format!("{what}: {rows} rows exceed the dispatch limit")));
        }
        Ok((x as u32, y as u32, 1))
    }
}

pub(crate) fn padded(bytes: u64) -> u64 {
    bytes.max(4).div_ceil(4) * 4
}

pub(crate) fn device_error(desc: &AdapterDesc, message: String) -> Error {
    Error::Device {
        device: format!("wgpu:{} ({})", desc.index, desc.name),
        message,
    }
}
