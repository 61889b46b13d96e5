//! CUDA kernels: the committed PTX of each source in `kernels/cuda/`, with launch metadata.
//!
//! `cargo xtask kernels` writes `kernels/ptx/<module>.ptx` with NVRTC; its second line
//! carries the SHA-256 of the NVRTC options, the shared headers and the source, which the
//! tests here recompute so that stale PTX fails without any CUDA tool.

use sha2::{Digest, Sha256};

/// One PTX module: the functions it exports and the sources it came from.
#[derive(Clone, Copy, Debug)]
pub struct Module {
    pub name: &'static str,
    pub ptx: &'static str,
    pub functions: &'static [&'static str],
    source: &'static str,
}

macro_rules! module {
    ($name:literal, [$($f:literal),* $(,)?]) => {
        Module {
            name: $name,
            ptx: include_str!(concat!("../ptx/", $name, ".ptx")),
            functions: &[$($f),*],
            source: include_str!(concat!("../cuda/", $name, ".cu")),
        }
    };
}

pub const GEMM: Module = module!("gemm", ["gemm_f32", "gemm_tf32", "gemm_f16", "gemm_bf16"]);
pub const ELEMENTWISE: Module = module!(
    "elementwise",
    [
        "unary_f32",
        "binary_f32",
        "cast_i64_f32",
        "cast_i32_f32",
        "cast_u8_f32",
        "cast_f32_f16",
        "cast_f16_f32",
        "cast_f32_bf16",
        "cast_bf16_f32",
    ]
);
pub const SOFTMAX: Module = module!("softmax", ["softmax_f32"]);
pub const NORM: Module = module!("norm", ["layernorm_f32", "batchnorm_f32"]);
pub const REDUCE: Module = module!("reduce", ["reduce_f32"]);
pub const LAYOUT: Module = module!(
    "layout",
    [
        "copy_b1",
        "copy_b2",
        "copy_b4",
        "copy_b8",
        "gather_b1",
        "gather_b2",
        "gather_b4",
        "gather_b8",
    ]
);
pub const CONV: Module = module!("conv", ["conv2d_f32", "pool2d_f32"]);
pub const ATTENTION: Module = module!("attention", ["sdpa_f32"]);

/// Every module, in the order of their file names.
pub const MODULES: [Module; 8] = [
    ATTENTION,
    CONV,
    ELEMENTWISE,
    GEMM,
    LAYOUT,
    NORM,
    REDUCE,
    SOFTMAX,
];

/// The NVRTC options (`kernels/cuda/nvrtc.opts`) and shared headers every source includes.
const OPTIONS: (&str, &str) = ("nvrtc.opts", include_str!("../cuda/nvrtc.opts"));
const HEADERS: [(&str, &str); 1] = [("common.cuh", include_str!("../cuda/common.cuh"))];

/// Launch geometry the kernels are written for.
pub mod launch {
    /// Output tile (rows and columns) of every GEMM and of the implicit-GEMM conv.
    pub const GEMM_TILE: u32 = 64;
    /// Threads of `gemm_f32` and `conv2d_f32` (16×16, 4×4 outputs each).
    pub const GEMM_SIMT_THREADS: u32 = 256;
    /// Threads of the tensor-core GEMMs (2×2 warps).
    pub const GEMM_MMA_THREADS: u32 = 128;
    /// Threads of the per-row kernels (softmax, layernorm): whole warps, at most 1024.
    pub const ROW_THREADS: u32 = 256;
    /// Threads of `sdpa_f32`: one warp per query row.
    pub const ATTENTION_THREADS: u32 = 128;
    /// Largest head size `sdpa_f32` handles (4 values per lane).
    pub const ATTENTION_MAX_HEAD: usize = 128;
    /// Threads of the grid-stride elementwise kernels.
    pub const ELEMENTWISE_THREADS: u32 = 256;
    /// Highest rank of the strided copy and broadcasting kernels.
    pub const MAX_RANK: usize = 6;
}

/// Epilogue activations of the GEMM and conv kernels (`ACT_*` in `common.cuh`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Activation {
    None = 0,
    Relu = 1,
    GeluErf = 2,
    GeluTanh = 3,
}

/// Op codes of `unary_f32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum UnaryOp {
    Relu = 0,
    Gelu = 1,
    GeluTanh = 2,
    Erf = 3,
    Exp = 4,
    Log = 5,
    Tanh = 6,
    Sigmoid = 7,
    Sqrt = 8,
    Neg = 9,
    Abs = 10,
    Reciprocal = 11,
    LeakyRelu = 12,
    Clip = 13,
    Identity = 14,
    Silu = 15,
    Floor = 16,
    Ceil = 17,
}

/// Op codes of `binary_f32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum BinaryOp {
    Add = 0,
    Sub = 1,
    Mul = 2,
    Div = 3,
    Pow = 4,
    Max = 5,
    Min = 6,
}

/// Op codes of `reduce_f32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum ReduceKind {
    Sum = 0,
    Mean = 1,
    Max = 2,
    Min = 3,
    Prod = 4,
    SumSquare = 5,
}

impl Module {
    /// The SHA-256 that `cargo xtask kernels` records for this module's sources: over the
    /// options, each header and the source, each as `name\n<len>\n<bytes>`.
    pub fn source_hash(&self) -> String {
        let mut h = Sha256::new();
        let cu = format!("{}.cu", self.name);
        let parts = std::iter::once(OPTIONS)
            .chain(HEADERS)
            .chain(std::iter::once((cu.as_str(), self.source)));
        for (name, text) in parts {
            h.update(format!("{name}\n{}\n", text.len()).as_bytes());
            h.update(text.as_bytes());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The hash recorded in the committed PTX.
    pub fn ptx_hash(&self) -> Option<&'static str> {
        self.ptx
            .lines()
            .take(4)
            .find_map(|l| l.strip_prefix("// source-sha256: "))
    }

    /// Whether the PTX defines `function` as a kernel entry.
    pub fn has_entry(&self, function: &str) -> bool {
        self.ptx.lines().any(|l| {
            l.trim_start()
                .strip_prefix(".visible .entry ")
                .and_then(|r| r.strip_prefix(function))
                .is_some_and(|r| r.starts_with('('))
        })
    }
}

/// The module that exports `function`.
pub fn module_of(function: &str) -> Option<&'static Module> {
    MODULES.iter().find(|m| m.functions.contains(&function))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn dir_files(ext: &str) -> Vec<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("cuda");
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let p = e.unwrap().path();
                (p.extension()? == ext).then(|| p.file_name().unwrap().to_string_lossy().into())
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn ptx_is_fresh() {
        for m in MODULES {
            assert_eq!(
                m.ptx_hash(),
                Some(m.source_hash().as_str()),
                "kernels/ptx/{}.ptx does not match its sources: run `cargo xtask kernels`",
                m.name
            );
        }
    }

    #[test]
    fn modules_and_headers_match_the_sources_on_disk() {
        let names: Vec<String> = MODULES.iter().map(|m| format!("{}.cu", m.name)).collect();
        assert_eq!(
            names,
            dir_files("cu"),
            "MODULES lists every kernels/cuda/*.cu"
        );
        let headers: Vec<String> = HEADERS.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(
            headers,
            dir_files("cuh"),
            "HEADERS lists every kernels/cuda/*.cuh"
        );
    }

    #[test]
    fn every_listed_function_is_an_entry_and_every_entry_is_listed() {
        for m in MODULES {
            for f in m.functions {
                assert!(m.has_entry(f), "{}.ptx has no entry {f}", m.name);
            }
            let entries = m
                .ptx
                .lines()
                .filter(|l| l.trim_start().starts_with(".visible .entry "))
                .count();
            assert_eq!(entries, m.functions.len(), "{}: unlisted entries", m.name);
        }
        assert_eq!(module_of("gemm_tf32").map(|m| m.name), Some("gemm"));
        assert!(module_of("nope").is_none());
    }

    #[test]
    fn ptx_targets_sm_80() {
        for m in MODULES {
            assert!(m.ptx.contains(".target sm_80"), "{}", m.name);
        }
    }
}
