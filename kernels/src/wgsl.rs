//! WGSL compute shaders from `kernels/wgsl/`, with their entry points and bindings.
//!
//! Every shader starts with `common.wgsl` (the parameter block at binding 0 and the
//! index helpers), so [`Shader::source`] is the text to hand to the WGSL front end.
//! Binding 0 is a 256-byte uniform block of `u32` words ([`PARAM_WORDS`]); bindings
//! `1..=inputs` are read-only storage buffers and binding `inputs + 1` is the output.

/// Words (`u32`) in the uniform parameter block every shader reads at binding 0.
pub const PARAM_WORDS: usize = 64;

/// Invocations per workgroup of the 1-D kernels (those dispatched by element count).
pub const WORKGROUP_1D: u32 = 256;

/// One compute shader: its WGSL text (with the shared prelude) and its bindings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shader {
    pub name: &'static str,
    pub source: &'static str,
    pub entry_point: &'static str,
    /// Storage buffers the shader reads, at bindings `1..=inputs`.
    pub inputs: u32,
}

/// Files prepended to shaders rather than compiled on their own: `common` to every one,
/// the others to the shaders that name them.
pub const PRELUDES: &[&str] = &["common", "matmul_common", "row_reduce"];

macro_rules! shader {
    ($konst:ident, $name:literal, $inputs:literal $(, $prelude:literal)?) => {
        shader!(@ $konst, $name, $inputs, "", $($prelude)?);
    };
    // Needs the `f16` extension (wgpu::Features::SHADER_F16), enabled before the prelude.
    (f16 $konst:ident, $name:literal, $inputs:literal) => {
        shader!(@ $konst, $name, $inputs, "enable f16;\n",);
    };
    (@ $konst:ident, $name:literal, $inputs:literal, $enable:literal, $($prelude:literal)?) => {
        pub const $konst: Shader = Shader {
            name: $name,
            source: concat!(
                $enable,
                include_str!("../wgsl/common.wgsl"),
                "\n",
                $(include_str!(concat!("../wgsl/", $prelude, ".wgsl")), "\n",)?
                include_str!(concat!("../wgsl/", $name, ".wgsl"))
            ),
            entry_point: "main",
            inputs: $inputs,
        };
    };
}

shader!(UNARY, "unary", 1);
shader!(BINARY, "binary", 2);
shader!(MATMUL, "matmul", 3, "matmul_common");
shader!(MATMUL_VEC4, "matmul_vec4", 3, "matmul_common");
shader!(MATVEC, "matvec", 3, "matmul_common");
shader!(SOFTMAX, "softmax", 1, "row_reduce");
shader!(LAYERNORM, "layernorm", 3, "row_reduce");
shader!(ATTENTION, "attention", 4);
shader!(COPY, "copy", 1);
shader!(GATHER, "gather", 2);
shader!(REDUCE, "reduce", 1);
shader!(CONV, "conv", 3);
shader!(POOL, "pool", 1);
shader!(CHANNEL, "channel", 3);

shader!(f16 WIDEN, "widen", 1);
shader!(f16 NARROW, "narrow", 1);

/// The shaders that need `f16` (wgpu::Features::SHADER_F16): the conversions at the
/// boundary of f16 tensors, which the other kernels read as f32.
pub const F16: &[Shader] = &[WIDEN, NARROW];

/// Every shader that needs no extension, in a fixed order.
pub const ALL: &[Shader] = &[
    UNARY,
    BINARY,
    MATMUL,
    MATMUL_VEC4,
    MATVEC,
    SOFTMAX,
    LAYERNORM,
    COPY,
    GATHER,
    REDUCE,
    CONV,
    POOL,
    CHANNEL,
    ATTENTION,
];

/// Operation codes of `unary.wgsl` (parameter word 1).
pub mod unary {
    pub const ABS: u32 = 0;
    pub const NEG: u32 = 1;
    pub const SQRT: u32 = 2;
    pub const EXP: u32 = 3;
    pub const LOG: u32 = 4;
    pub const ERF: u32 = 5;
    pub const SIN: u32 = 6;
    pub const COS: u32 = 7;
    pub const TAN: u32 = 8;
    pub const ASIN: u32 = 9;
    pub const ACOS: u32 = 10;
    pub const ATAN: u32 = 11;
    pub const SINH: u32 = 12;
    pub const COSH: u32 = 13;
    pub const ASINH: u32 = 14;
    pub const ACOSH: u32 = 15;
    pub const ATANH: u32 = 16;
    pub const CEIL: u32 = 17;
    pub const FLOOR: u32 = 18;
    pub const ROUND: u32 = 19;
    pub const SIGN: u32 = 20;
    pub const RECIPROCAL: u32 = 21;
    pub const TANH: u32 = 22;
    pub const SIGMOID: u32 = 23;
    pub const RELU: u32 = 24;
    pub const LEAKY_RELU: u32 = 25;
    pub const ELU: u32 = 26;
    pub const SELU: u32 = 27;
    pub const CELU: u32 = 28;
    pub const GELU: u32 = 29;
    pub const GELU_TANH: u32 = 30;
    pub const HARD_SIGMOID: u32 = 31;
    pub const HARD_SWISH: u32 = 32;
    pub const SOFTPLUS: u32 = 33;
    pub const SOFTSIGN: u32 = 34;
    pub const MISH: u32 = 35;
    pub const SHRINK: u32 = 36;
    pub const THRESHOLDED_RELU: u32 = 37;
    pub const SWISH: u32 = 38;
    pub const CLIP: u32 = 39;
    pub const SCALE: u32 = 40;
}

/// Operation codes of `binary.wgsl` (parameter word 1).
pub mod binary {
    pub const ADD: u32 = 0;
    pub const SUB: u32 = 1;
    pub const MUL: u32 = 2;
    pub const DIV: u32 = 3;
    pub const POW: u32 = 4;
    pub const MAX: u32 = 5;
    pub const MIN: u32 = 6;
    pub const PRELU: u32 = 7;
    pub const FMOD: u32 = 8;
}

/// Operation codes of `reduce.wgsl` (parameter word 1).
pub mod reduce {
    pub const SUM: u32 = 0;
    pub const MEAN: u32 = 1;
    pub const MAX: u32 = 2;
    pub const MIN: u32 = 3;
    pub const PROD: u32 = 4;
    pub const L1: u32 = 5;
    pub const L2: u32 = 6;
    pub const LOG_SUM: u32 = 7;
    pub const LOG_SUM_EXP: u32 = 8;
    pub const SUM_SQUARE: u32 = 9;
}

/// Pooling modes of `pool.wgsl` (parameter word 13).
pub mod pool {
    pub const MAX: u32 = 0;
    pub const AVERAGE_WITH_PADDING: u32 = 1;
    pub const AVERAGE: u32 = 2;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shader_file_is_listed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("wgsl");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .expect("kernels/wgsl exists")
            .map(|e| {
                e.expect("readable entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|n| n.ends_with(".wgsl"))
            .map(|n| n.trim_end_matches(".wgsl").to_string())
            .filter(|n| !PRELUDES.contains(&n.as_str()))
            .collect();
        files.sort();
        let mut listed: Vec<String> = ALL.iter().chain(F16).map(|s| s.name.to_string()).collect();
        listed.sort();
        assert_eq!(files, listed);
    }
}
