//! One CUDA device: its context and stream, the loaded PTX modules, a caching memory pool
//! and a pinned staging buffer. Everything that calls the driver lives here and in
//! `exec.rs`; the driver library is loaded at run time by cudarc.

use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::sync::{Arc, Mutex, MutexGuard};

use cudarc::driver::{result, sys, CudaContext, CudaStream, DriverError};

use crossover_core::{DeviceId, DeviceInfo, DeviceKind, Error, Result};
use crossover_kernels::cuda::MODULES;

use crate::visible::{self, Visible};

/// Why CUDA cannot be used here; displays as `CUDA not available: <reason>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotAvailable {
    pub reason: String,
}

impl std::fmt::Display for NotAvailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CUDA not available: {}", self.reason)
    }
}

impl std::error::Error for NotAvailable {}

fn na(reason: impl Into<String>) -> NotAvailable {
    NotAvailable {
        reason: reason.into(),
    }
}

/// Loads the driver library and runs `cuInit`, once per process. cudarc panics when a
/// symbol is missing from an old driver; that becomes a reason too.
pub(crate) fn driver() -> std::result::Result<(), NotAvailable> {
    // Read each time: the driver itself reads it once, at cuInit.
    if let Visible::None(reason) = visible::from_env() {
        return Err(na(reason));
    }
    static INIT: std::sync::OnceLock<std::result::Result<(), NotAvailable>> =
        std::sync::OnceLock::new();
    INIT.get_or_init(|| {
        // SAFETY: only tries to open the library; no symbol is called.
        if !unsafe { sys::is_culib_present() } {
            return Err(na(
                "the NVIDIA driver library (libcuda.so) was not found; is an NVIDIA driver installed?",
            ));
        }
        std::panic::catch_unwind(result::init)
            .map_err(|_| na("the NVIDIA driver library lacks a required function (driver too old)"))?
            .map_err(|e| na(format!("cuInit failed: {e}")))
    })
    .clone()
}

/// The CUDA devices this process may use, in driver order (`cuda:0`, `cuda:1`, …).
pub fn devices() -> std::result::Result<Vec<DeviceInfo>, NotAvailable> {
    driver()?;
    let count = result::device::get_count().map_err(|e| na(format!("cuDeviceGetCount: {e}")))?;
    if count <= 0 {
        return Err(na(match visible::from_env() {
            Visible::List(l) => format!(
                "the driver found no device matching CUDA_VISIBLE_DEVICES={}",
                l.join(",")
            ),
            _ => "the driver found no CUDA device".into(),
        }));
    }
    (0..count as usize)
        .map(|i| {
            let ctx = CudaContext::new(i).map_err(|e| na(format!("cuda:{i}: {e}")))?;
            info(&ctx, i).map_err(|e| na(format!("cuda:{i}: {e}")))
        })
        .collect()
}

fn info(ctx: &Arc<CudaContext>, index: usize) -> std::result::Result<DeviceInfo, DriverError> {
    ctx.bind_to_thread()?;
    let (free, total) = result::mem_get_info()?;
    let sms = ctx.attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
    Ok(DeviceInfo {
        id: DeviceId {
            kind: DeviceKind::Cuda,
            index,
        },
        name: ctx.name()?,
        memory_total: total as u64,
        memory_free: free as u64,
        compute_units: sms.max(0) as usize,
    })
}

/// A kernel handle. CUDA function handles may be used from any thread once their
/// context is current.
#[derive(Clone, Copy)]
pub(crate) struct Func(sys::CUfunction);
// SAFETY: see above; the handle is immutable and lives as long as its module.
unsafe impl Send for Func {}
unsafe impl Sync for Func {}

struct Module(sys::CUmodule);
// SAFETY: module handles are context-wide and immutable once loaded.
unsafe impl Send for Module {}
unsafe impl Sync for Module {}

/// One device, shared by every model compiled for it.
pub(crate) struct Device {
    pub index: usize,
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    pub compute_capability: (i32, i32),
    funcs: HashMap<&'static str, Func>,
    modules: Vec<Module>,
    pool: Mutex<Pool>,
    /// Serialises runs: they share the stream and the staging buffer.
    run: Mutex<Staging>,
}

pub(crate) fn dev_err(index: usize, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Device {
        device: format!("cuda:{index}"),
        message: format!("{what}: {e}"),
    }
}

impl Device {
    pub fn open(index: usize) -> Result<Arc<Device>> {
        driver().map_err(|e| Error::Device {
            device: format!("cuda:{index}"),
            message: e.to_string(),
        })?;
        let err = |what: &str, e: DriverError| dev_err(index, what, e);
        let ctx = CudaContext::new(index).map_err(|e| err("creating the context", e))?;
        let stream = ctx.new_stream().map_err(|e| err("creating a stream", e))?;
        let compute_capability = ctx
            .compute_capability()
            .map_err(|e| err("reading the compute capability", e))?;
        let mut funcs = HashMap::new();
        let mut modules = Vec::new();
        for m in MODULES {
            let ptx = CString::new(m.ptx).map_err(|e| dev_err(index, m.name, e))?;
            // SAFETY: the context is current (bound by CudaContext::new / new_stream) and
            // `ptx` is a NUL-terminated PTX image.
            let module = unsafe { result::module::load_data(ptx.as_ptr() as *const c_void) }
                .map_err(|e| err(&format!("loading PTX module {}", m.name), e))?;
            modules.push(Module(module));
            for f in m.functions {
                let name = CString::new(*f).map_err(|e| dev_err(index, f, e))?;
                // SAFETY: `module` was just loaded and is kept for the device's lifetime.
                let func = unsafe { result::module::get_function(module, name) }
                    .map_err(|e| err(&format!("finding kernel {f}"), e))?;
                funcs.insert(*f, Func(func));
            }
        }
        Ok(Arc::new(Device {
            index,
            ctx,
            stream,
            compute_capability,
            funcs,
            modules,
            pool: Mutex::new(Pool::default()),
            run: Mutex::new(Staging::default()),
        }))
    }

    pub fn err(&self, what: &str, e: impl std::fmt::Display) -> Error {
        dev_err(self.index, what, e)
    }

    pub fn info(&self) -> Result<DeviceInfo> {
        info(&self.ctx, self.index).map_err(|e| self.err("querying the device", e))
    }

    pub fn func(&self, name: &str) -> Result<Func> {
        self.funcs
            .get(name)
            .copied()
            .ok_or_else(|| self.err("missing kernel", name))
    }

    pub fn bind(&self) -> Result<()> {
        self.ctx
            .bind_to_thread()
            .map_err(|e| self.err("binding the context", e))
    }

    /// Launches `func` on the device's stream. `params` points at each kernel argument.
    ///
    /// # Safety
    /// `params` must match the kernel's parameter list, and every device pointer in them
    /// must stay allocated until the stream has run the kernel.
    pub unsafe fn launch(
        &self,
        func: Func,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        params: &mut [*mut c_void],
    ) -> Result<()> {
        // SAFETY: forwarded to the caller.
        unsafe { result::launch_kernel(func.0, grid, block, 0, self.stream.cu_stream(), params) }
            .map_err(|e| self.err("kernel launch", e))
    }

    pub fn sync(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(|e| self.err("synchronizing the stream", e))
    }

    /// Device memory of at least `bytes`, from the pool; returned when the buffer drops.
    pub fn alloc(self: &Arc<Self>, bytes: usize) -> Result<DevBuf> {
        let size = Pool::round(bytes);
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let ptr = match pool.free.get_mut(&size).and_then(Vec::pop) {
            Some(p) => {
                pool.cached -= size;
                p
            }
            None => {
                // SAFETY: plain allocation in the current context.
                match unsafe { result::malloc_sync(size) } {
                    Ok(p) => p,
                    Err(_) => {
                        // Out of memory: give cached blocks back and try once more.
                        pool.trim();
                        // SAFETY: as above.
                        unsafe { result::malloc_sync(size) }.map_err(|e| {
                            self.err(&format!("allocating {size} bytes of device memory"), e)
                        })?
                    }
                }
            }
        };
        pool.in_use += size;
        pool.peak = pool.peak.max(pool.in_use);
        Ok(DevBuf {
            ptr,
            size,
            device: self.clone(),
        })
    }

    /// Bytes in use now and the high-water mark since the last reset.
    pub fn pool_usage(&self, reset_peak: bool) -> (usize, usize, usize) {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let r = (pool.in_use, pool.peak, pool.cached);
        if reset_peak {
            pool.peak = pool.in_use;
        }
        r
    }

    /// Holds the run lock: one run at a time per device.
    pub fn lock_run(&self) -> MutexGuard<'_, Staging> {
        self.run.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        if self.ctx.bind_to_thread().is_err() {
            return;
        }
        let _ = self.stream.synchronize();
        self.pool
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .trim();
        self.run.get_mut().unwrap_or_else(|p| p.into_inner()).free();
        for m in self.modules.drain(..) {
            // SAFETY: no kernel of this module runs any more (stream synchronised).
            let _ = unsafe { result::module::unload(m.0) };
        }
    }
}

/// Caching allocator: freed blocks wait in per-size free lists for the next request of
/// the same rounded size, so steady-state runs never call cuMemAlloc.
#[derive(Default)]
struct Pool {
    free: HashMap<usize, Vec<sys::CUdeviceptr>>,
    in_use: usize,
    cached: usize,
    peak: usize,
}

impl Pool {
    /// Sizes round to 512 bytes below 1 MiB and to 2 MiB above, bounding the number of
    /// size classes while wasting little.
    fn round(bytes: usize) -> usize {
        const SMALL: usize = 512;
        const LARGE: usize = 2 << 20;
        let b = bytes.max(1);
        if b < (1 << 20) {
            b.div_ceil(SMALL) * SMALL
        } else {
            b.div_ceil(LARGE) * LARGE
        }
    }

    fn trim(&mut self) {
        for (_, list) in self.free.drain() {
            for p in list {
                // SAFETY: cached blocks are owned by the pool and unused.
                let _ = unsafe { result::free_sync(p) };
            }
        }
        self.cached = 0;
    }
}

/// A block of device memory from the pool.
pub(crate) struct DevBuf {
    pub ptr: sys::CUdeviceptr,
    pub size: usize,
    device: Arc<Device>,
}

impl Drop for DevBuf {
    fn drop(&mut self) {
        // Stream order makes reuse safe: the next user's work queues behind this one's.
        let mut pool = self.device.pool.lock().unwrap_or_else(|p| p.into_inner());
        pool.in_use -= self.size;
        pool.cached += self.size;
        pool.free.entry(self.size).or_default().push(self.ptr);
    }
}

/// Page-locked host memory for async copies, grown on demand. Handed out as a bump
/// allocator within one run; `reset` after the stream is synchronised.
#[derive(Default)]
pub(crate) struct Staging {
    ptr: usize,
    cap: usize,
    used: usize,
}

impl Staging {
    /// `len` bytes of pinned memory (8-byte aligned). Synchronises the stream first when
    /// the buffer is full, since earlier copies may still read from it.
    pub fn take(&mut self, device: &Device, len: usize) -> Result<*mut u8> {
        let len8 = len.div_ceil(8) * 8;
        if self.used + len8 > self.cap {
            device.sync()?;
            self.used = 0;
            if len8 > self.cap {
                self.free();
                let cap = len8.max(self.cap * 2).max(1 << 20);
                // SAFETY: plain pinned allocation in the current context.
                let p = unsafe { result::malloc_host(cap, 0) }.map_err(|e| {
                    device.err(&format!("allocating {cap} bytes of pinned memory"), e)
                })?;
                self.ptr = p as usize;
                self.cap = cap;
            }
        }
        let p = (self.ptr + self.used) as *mut u8;
        self.used += len8;
        Ok(p)
    }

    pub fn reset(&mut self) {
        self.used = 0;
    }

    fn free(&mut self) {
        if self.ptr != 0 {
            // SAFETY: allocated by malloc_host; callers synchronised before.
            let _ = unsafe { result::free_host(self.ptr as *mut c_void) };
        }
        self.ptr = 0;
        self.cap = 0;
        self.used = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_sizes_round_to_few_classes() {
        assert_eq!(Pool::round(0), 512);
        assert_eq!(Pool::round(1), 512);
        assert_eq!(Pool::round(513), 1024);
        assert_eq!(Pool::round((1 << 20) - 1), 1 << 20);
        assert_eq!(Pool::round(1 << 20), 2 << 20);
        assert_eq!(Pool::round((2 << 20) + 1), 4 << 20);
    }

    #[test]
    fn not_available_names_the_reason() {
        assert_eq!(na("no driver").to_string(), "CUDA not available: no driver");
    }
}
