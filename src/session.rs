//! The object users hold: a model compiled for its devices.

use std::path::Path;
use std::sync::Arc;

use crossover_core::{
    invalid, passes, Backend, CompileOptions, DeviceId, Executable, Graph, MemoryUsage, Model,
    Result, RunOutput, Tensor, ValueInfo,
};
use crossover_cpu::CpuBackend;

#[derive(Clone, Debug, Default)]
pub struct SessionBuilder {
    device: Option<DeviceId>,
    threads: Option<usize>,
}

impl SessionBuilder {
    /// Runs on this device (`cpu` today; the scheduler adds `cuda:N` and `wgpu:N`).
    pub fn device(mut self, device: DeviceId) -> Self {
        self.device = Some(device);
        self
    }

    /// Worker threads for the CPU; all cores when unset.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = Some(threads);
        self
    }

    pub fn build_from_file(self, path: impl AsRef<Path>) -> Result<Session> {
        self.build(Model::load(path)?)
    }

    pub fn build_from_bytes(self, bytes: &[u8]) -> Result<Session> {
        self.build(Model::from_bytes(bytes)?)
    }

    pub fn build(self, model: Model) -> Result<Session> {
        let device = self.device.unwrap_or(DeviceId::CPU);
        let backend: Box<dyn Backend> = match device.kind {
            crossover_core::DeviceKind::Cpu => Box::new(CpuBackend::new()),
            _ => return Err(invalid!("device {device} is not available in this build")),
        };
        let mut graph = model.graph.clone();
        passes::optimize(&mut graph, &CpuBackend::new())?;
        let graph = Arc::new(graph);
        let executable = backend.compile(
            graph.clone(),
            &CompileOptions {
                threads: self.threads,
                ..CompileOptions::default()
            },
        )?;
        Ok(Session {
            model,
            graph,
            device,
            executable,
        })
    }
}

/// A model ready to run.
pub struct Session {
    model: Model,
    graph: Arc<Graph>,
    device: DeviceId,
    executable: Box<dyn Executable>,
}

impl Session {
    pub fn builder() -> SessionBuilder {
        SessionBuilder::default()
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn device(&self) -> &DeviceId {
        &self.device
    }

    pub fn inputs(&self) -> Vec<&ValueInfo> {
        self.graph.input_infos().collect()
    }

    pub fn outputs(&self) -> Vec<&ValueInfo> {
        self.graph.output_infos().collect()
    }

    /// Runs with inputs given by name; returns the outputs in the model's order.
    pub fn run(&self, inputs: &[(&str, Tensor)]) -> Result<Vec<Tensor>> {
        Ok(self.run_with_info(inputs)?.outputs)
    }

    /// Like [`Session::run`], with the stage timings and peak memory of the run.
    pub fn run_with_info(&self, inputs: &[(&str, Tensor)]) -> Result<RunOutput> {
        let ordered = self.order_inputs(inputs)?;
        self.executable.run(&ordered)
    }

    /// Runs with inputs in the model's order.
    pub fn run_ordered(&self, inputs: &[Tensor]) -> Result<RunOutput> {
        self.executable.run(inputs)
    }

    pub fn memory(&self) -> MemoryUsage {
        self.executable.memory()
    }

    fn order_inputs(&self, inputs: &[(&str, Tensor)]) -> Result<Vec<Tensor>> {
        let expected: Vec<&str> = self.graph.input_infos().map(|v| v.name.as_str()).collect();
        for (name, _) in inputs {
            if !expected.contains(name) {
                return Err(invalid!(
                    "the model has no input {name:?}; its inputs are {expected:?}"
                ));
            }
        }
        expected
            .iter()
            .map(|want| {
                let mut given = inputs.iter().filter(|(n, _)| n == want);
                match (given.next(), given.next()) {
                    (Some((_, t)), None) => Ok(t.clone()),
                    (None, _) => Err(invalid!("input {want:?} is missing")),
                    (Some(_), Some(_)) => Err(invalid!("input {want:?} is given twice")),
                }
            })
            .collect()
    }
}
