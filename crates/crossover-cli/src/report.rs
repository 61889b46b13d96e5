//! `crossover profile`: each device's measured curve, crossover, breakdown, memory and
//! cost, as a table, JSON and an SVG plot.

use std::collections::BTreeMap;
use std::path::Path;

use crossover::sched::{crossover as crossover_point, CostCurve, Crossover};
use crossover::{DeviceId, DeviceKind, Error, Profile, Result};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

/// Everything `profile` reports; also the input of `crossover plan`.
#[derive(Serialize, Deserialize)]
pub struct Report {
    pub model: String,
    pub profiles: Vec<Profile>,
    /// Dollars per hour for each device.
    pub prices: BTreeMap<DeviceId, f64>,
    pub crossovers: Vec<CrossoverEntry>,
}

#[derive(Serialize, Deserialize)]
pub struct CrossoverEntry {
    pub device: DeviceId,
    pub versus: DeviceId,
    /// The batch size from which `device` is faster; `None` if never within the range.
    pub from_batch: Option<usize>,
    pub summary: String,
}

/// Price of `id` from a map keyed by device name (`cuda:0`) or by kind (`cuda`, parsed
/// as `cuda:0`, applies to every device of that kind).
pub fn price_of(prices: &BTreeMap<DeviceId, f64>, id: &DeviceId) -> Option<f64> {
    prices.get(id).copied().or_else(|| {
        prices
            .iter()
            .find(|(d, _)| d.kind == id.kind && d.index == 0)
            .map(|(_, p)| *p)
    })
}

/// Dollars per million inferences at `batch`, when the device is paid for by the hour
/// and kept busy.
pub fn dollars_per_million(curve: &CostCurve, batch: usize, per_hour: f64) -> f64 {
    per_hour / 3600.0 / curve.throughput(batch) * 1e6
}

impl Report {
    pub fn new(
        model: String,
        profiles: Vec<Profile>,
        prices: BTreeMap<DeviceId, f64>,
    ) -> Result<Report> {
        let mut crossovers = Vec::new();
        let cpu = profiles.iter().find(|p| p.device.kind == DeviceKind::Cpu);
        if let Some(cpu) = cpu {
            let cpu_curve = cpu.curve()?;
            for p in profiles.iter().filter(|p| p.device.kind != DeviceKind::Cpu) {
                let curve = p.curve()?;
                let range = p.max_batch.max(cpu.max_batch);
                let at = crossover_point(&cpu_curve, &curve, range);
                crossovers.push(CrossoverEntry {
                    device: p.device.clone(),
                    versus: cpu.device.clone(),
                    from_batch: match at {
                        Crossover::Always => Some(1),
                        Crossover::AtBatch(n) => Some(n),
                        Crossover::Never => None,
                    },
                    summary: format!(
                        "{} beats {}: {at}; batch 1 on {}: {}",
                        p.device,
                        cpu.device,
                        p.device,
                        curve.breakdown(1)
                    ),
                });
            }
        }
        Ok(Report {
            model,
            profiles,
            prices,
            crossovers,
        })
    }

    pub fn print(&self) -> Result<()> {
        println!(
            "{:<8} {:>6} {:>12} {:>12} {:>10} {:>10} {:>10}",
            "device", "batch", "latency ms", "samples/s", "upload", "compute", "download"
        );
        for p in &self.profiles {
            for s in &p.samples {
                println!(
                    "{:<8} {:>6} {:>12.3} {:>12.1} {:>10.3} {:>10.3} {:>10.3}",
                    p.device.to_string(),
                    s.batch,
                    s.total() * 1e3,
                    s.batch as f64 / s.total().max(1e-12),
                    s.upload * 1e3,
                    s.compute * 1e3,
                    s.download * 1e3
                );
            }
        }
        println!();
        for p in &self.profiles {
            let curve = p.curve()?;
            println!(
                "{}: batch 1: {}; {:.3} ms fixed per run",
                p.device,
                curve.breakdown(1),
                curve.overhead() * 1e3
            );
            println!(
                "  memory: weights {:.1} MiB, {:.1} KiB of activations per sample, max batch {} (limited by {})",
                p.weights_bytes as f64 / (1 << 20) as f64,
                p.activation_bytes_per_sample as f64 / 1024.0,
                p.max_batch,
                p.limited_by
            );
            if let Some(price) = price_of(&self.prices, &p.device) {
                let best = p
                    .samples
                    .iter()
                    .max_by(|a, b| {
                        curve
                            .throughput(a.batch)
                            .total_cmp(&curve.throughput(b.batch))
                    })
                    .map_or(1, |s| s.batch);
                println!(
                    "  cost at ${price:.2}/h: ${:.3} per 1M inferences at batch 1, ${:.3} at batch {best}",
                    dollars_per_million(&curve, 1, price),
                    dollars_per_million(&curve, best, price)
                );
            }
        }
        for c in &self.crossovers {
            println!("{}", c.summary);
        }
        Ok(())
    }

    pub fn read_json(path: &Path) -> Result<Report> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| {
            crossover::core::invalid!(
                "{} is not a profile written by `crossover profile --json`: {e}",
                path.display()
            )
        })
    }

    pub fn write_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| crossover::core::invalid!("cannot encode the report: {e}"))?;
        std::fs::write(path, text).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Latency and throughput against batch size per device, crossovers marked.
    pub fn write_svg(&self, path: &Path) -> Result<()> {
        let draw = |e: String| crossover::core::invalid!("cannot draw {}: {e}", path.display());
        let root = SVGBackend::new(path, (1100, 450)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw(e.to_string()))?;
        let panels = root.split_evenly((1, 2));
        let max_batch = self
            .profiles
            .iter()
            .map(|p| p.max_batch)
            .max()
            .unwrap_or(1)
            .max(2) as f64;
        let series: Vec<(String, Vec<(f64, f64, f64)>)> = self
            .profiles
            .iter()
            .map(|p| {
                let pts = p
                    .samples
                    .iter()
                    .map(|s| {
                        (
                            s.batch as f64,
                            s.total() * 1e3,
                            s.batch as f64 / s.total().max(1e-12),
                        )
                    })
                    .collect();
                (p.device.to_string(), pts)
            })
            .collect();
        for (panel, (title, pick)) in panels.iter().zip([
            (
                "latency (ms) vs batch",
                (|p: &(f64, f64, f64)| p.1) as fn(&(f64, f64, f64)) -> f64,
            ),
            ("throughput (samples/s) vs batch", |p: &(f64, f64, f64)| p.2),
        ]) {
            let top = series
                .iter()
                .flat_map(|(_, v)| v.iter().map(pick))
                .fold(0.0f64, f64::max)
                * 1.1;
            let mut chart = ChartBuilder::on(panel)
                .caption(title, ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(55)
                .build_cartesian_2d((1.0..max_batch).log_scale(), 0.0..top.max(1e-9))
                .map_err(|e| draw(e.to_string()))?;
            chart
                .configure_mesh()
                .x_desc("batch size")
                .draw()
                .map_err(|e| draw(e.to_string()))?;
            for (i, (name, pts)) in series.iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                chart
                    .draw_series(LineSeries::new(
                        pts.iter().map(|p| (p.0, pick(p))),
                        color.stroke_width(2),
                    ))
                    .map_err(|e| draw(e.to_string()))?
                    .label(name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(PointSeries::of_element(
                        pts.iter().map(|p| (p.0, pick(p))),
                        3,
                        color.filled(),
                        &|c, s, st| Circle::new(c, s, st),
                    ))
                    .map_err(|e| draw(e.to_string()))?;
            }
            for c in &self.crossovers {
                if let Some(b) = c.from_batch {
                    chart
                        .draw_series(LineSeries::new(
                            [(b as f64, 0.0), (b as f64, top)],
                            BLACK.mix(0.5).stroke_width(1),
                        ))
                        .map_err(|e| draw(e.to_string()))?
                        .label(format!("{} beats {} from batch {b}", c.device, c.versus))
                        .legend(|(x, y)| {
                            PathElement::new(vec![(x, y), (x + 16, y)], BLACK.mix(0.5))
                        });
                }
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| draw(e.to_string()))?;
        }
        root.present().map_err(|e| draw(e.to_string()))
    }
}
