//! Built-in models with seeded random weights, built through [`ModelBuilder`]: the
//! defaults for `crossover tradeoffs`, the benches and the golden tests. No download.
//!
//! Each builds real ONNX bytes, so the same model can be saved and run by onnxruntime.

use std::fmt;
use std::str::FromStr;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

use crate::{Attr, DType, Dim, Error, Model, ModelBuilder, Result, Tensor};

/// The built-in models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ZooModel {
    /// 784 → 512 → 256 → 10 with ReLU (Gemm).
    Mlp,
    /// Two Conv+BatchNorm+ReLU+MaxPool stages on 3×32×32 images, global pooling, Gemm.
    Cnn,
    /// A BERT-style encoder with the dimensions of all-MiniLM-L6-v2: 6 layers, hidden 384,
    /// 12 heads, FFN 1536, vocabulary 30522, inputs `input_ids` and `attention_mask`.
    Encoder,
}

impl ZooModel {
    pub const ALL: [ZooModel; 3] = [ZooModel::Mlp, ZooModel::Cnn, ZooModel::Encoder];

    pub fn name(self) -> &'static str {
        match self {
            ZooModel::Mlp => "mlp",
            ZooModel::Cnn => "cnn",
            ZooModel::Encoder => "encoder",
        }
    }

    /// The model as ONNX bytes.
    pub fn onnx_bytes(self) -> Vec<u8> {
        self.builder().to_bytes()
    }

    pub fn model(self) -> Result<Model> {
        Model::from_bytes(&self.onnx_bytes())
    }

    pub fn builder(self) -> ModelBuilder {
        match self {
            ZooModel::Mlp => mlp(),
            ZooModel::Cnn => cnn(),
            ZooModel::Encoder => encoder(&EncoderConfig::MINILM),
        }
    }

    /// Seeded random inputs for a batch of `batch` (and `seq` tokens for the encoder).
    pub fn sample_inputs(self, batch: usize, seq: usize) -> Vec<(String, Tensor)> {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        match self {
            ZooModel::Mlp => vec![("x".into(), normal(&mut rng, &[batch, 784], 1.0))],
            ZooModel::Cnn => vec![("image".into(), normal(&mut rng, &[batch, 3, 32, 32], 1.0))],
            ZooModel::Encoder => {
                let vocab = EncoderConfig::MINILM.vocab as i64;
                let ids = Uniform::new(0, vocab);
                let input_ids: Vec<i64> = (0..batch * seq).map(|_| ids.sample(&mut rng)).collect();
                // Later rows are padded more, so the mask matters.
                let mask: Vec<i64> = (0..batch)
                    .flat_map(|b| (0..seq).map(move |s| (s < seq - (b % 4) * seq / 8) as i64))
                    .collect();
                vec![
                    (
                        "input_ids".into(),
                        Tensor::from_vec(&[batch, seq], input_ids).expect("sized above"),
                    ),
                    (
                        "attention_mask".into(),
                        Tensor::from_vec(&[batch, seq], mask).expect("sized above"),
                    ),
                ]
            }
        }
    }
}

impl fmt::Display for ZooModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ZooModel {
    type Err = Error;

    fn from_str(s: &str) -> Result<ZooModel> {
        ZooModel::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                crate::core::invalid!("no built-in model {s:?}; choose mlp, cnn or encoder")
            })
    }
}

fn normal(rng: &mut ChaCha8Rng, shape: &[usize], std: f32) -> Tensor {
    let d = Normal::new(0.0f32, std).expect("positive std");
    let n = shape.iter().product();
    Tensor::from_vec(shape, (0..n).map(|_| d.sample(rng)).collect::<Vec<f32>>())
        .expect("sized above")
}

fn around_one(rng: &mut ChaCha8Rng, n: usize) -> Tensor {
    let d = Uniform::new(0.8f32, 1.2);
    Tensor::from_vec(&[n], (0..n).map(|_| d.sample(rng)).collect::<Vec<f32>>())
        .expect("sized above")
}

fn ints(v: &[i64]) -> Tensor {
    Tensor::from_vec(&[v.len()], v.to_vec()).expect("sized above")
}

fn mlp() -> ModelBuilder {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut b = ModelBuilder::new("crossover-mlp");
    let mut h = b.input(
        "x",
        DType::F32,
        &[Dim::Param("batch".into()), Dim::Fixed(784)],
    );
    let dims = [784, 512, 256, 10];
    for (i, w) in dims.windows(2).enumerate() {
        let weight = b.weight(
            &format!("fc{i}.weight"),
            &normal(&mut rng, &[w[1], w[0]], (2.0 / w[0] as f32).sqrt()),
        );
        let bias = b.weight(&format!("fc{i}.bias"), &normal(&mut rng, &[w[1]], 0.01));
        h = b.node("Gemm", &[&h, &weight, &bias], &[("transB", Attr::Int(1))]);
        if i + 2 < dims.len() {
            h = b.node("Relu", &[&h], &[]);
        }
    }
    b.output(
        &h,
        "logits",
        DType::F32,
        &[Dim::Param("batch".into()), Dim::Fixed(10)],
    );
    b
}

fn cnn() -> ModelBuilder {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut b = ModelBuilder::new("crossover-cnn");
    let batch = Dim::Param("batch".into());
    let mut h = b.input(
        "image",
        DType::F32,
        &[batch.clone(), Dim::Fixed(3), Dim::Fixed(32), Dim::Fixed(32)],
    );
    let mut cin = 3;
    for (i, cout) in [16usize, 32].into_iter().enumerate() {
        let w = b.weight(
            &format!("conv{i}.weight"),
            &normal(
                &mut rng,
                &[cout, cin, 3, 3],
                (2.0 / (cin * 9) as f32).sqrt(),
            ),
        );
        let bias = b.weight(&format!("conv{i}.bias"), &normal(&mut rng, &[cout], 0.01));
        h = b.node(
            "Conv",
            &[&h, &w, &bias],
            &[
                ("kernel_shape", Attr::Ints(vec![3, 3])),
                ("pads", Attr::Ints(vec![1, 1, 1, 1])),
            ],
        );
        let scale = b.weight(&format!("bn{i}.scale"), &around_one(&mut rng, cout));
        let shift = b.weight(&format!("bn{i}.bias"), &normal(&mut rng, &[cout], 0.1));
        let mean = b.weight(&format!("bn{i}.mean"), &normal(&mut rng, &[cout], 0.1));
        let var = b.weight(&format!("bn{i}.var"), &around_one(&mut rng, cout));
        h = b.node(
            "BatchNormalization",
            &[&h, &scale, &shift, &mean, &var],
            &[("epsilon", Attr::Float(1e-5))],
        );
        h = b.node("Relu", &[&h], &[]);
        h = b.node(
            "MaxPool",
            &[&h],
            &[
                ("kernel_shape", Attr::Ints(vec![2, 2])),
                ("strides", Attr::Ints(vec![2, 2])),
            ],
        );
        cin = cout;
    }
    h = b.node("GlobalAveragePool", &[&h], &[]);
    h = b.node("Flatten", &[&h], &[("axis", Attr::Int(1))]);
    let w = b.weight(
        "fc.weight",
        &normal(&mut rng, &[10, cin], (1.0 / cin as f32).sqrt()),
    );
    let bias = b.weight("fc.bias", &normal(&mut rng, &[10], 0.01));
    h = b.node("Gemm", &[&h, &w, &bias], &[("transB", Attr::Int(1))]);
    b.output(&h, "logits", DType::F32, &[batch, Dim::Fixed(10)]);
    b
}

/// Dimensions of a BERT-style encoder.
#[derive(Clone, Copy, Debug)]
pub struct EncoderConfig {
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub max_positions: usize,
}

impl EncoderConfig {
    pub const MINILM: EncoderConfig = EncoderConfig {
        layers: 6,
        hidden: 384,
        heads: 12,
        ffn: 1536,
        vocab: 30522,
        max_positions: 512,
    };
}

/// A BERT-style encoder: embeddings + LayerNorm, then per layer multi-head self-attention
/// with an additive padding mask, Erf GELU feed-forward, post-LayerNorm residuals.
pub fn encoder(cfg: &EncoderConfig) -> ModelBuilder {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut b = ModelBuilder::new("crossover-encoder");
    let (batch, seq) = (Dim::Param("batch".into()), Dim::Param("sequence".into()));
    let ids = b.input("input_ids", DType::I64, &[batch.clone(), seq.clone()]);
    let mask = b.input("attention_mask", DType::I64, &[batch.clone(), seq.clone()]);
    let h = cfg.hidden;
    let head_dim = h / cfg.heads;

    let word = b.weight("embeddings.word", &normal(&mut rng, &[cfg.vocab, h], 0.02));
    let pos = b.weight(
        "embeddings.position",
        &normal(&mut rng, &[cfg.max_positions, h], 0.02),
    );
    let tokens = b.node("Gather", &[&word, &ids], &[]);
    // Positions 0..S: slice the table by the sequence length taken from the ids' shape.
    let shape = b.node("Shape", &[&ids], &[]);
    let one = b.weight("const.one", &ints(&[1]));
    let two = b.weight("const.two", &ints(&[2]));
    let zero = b.weight("const.zero", &ints(&[0]));
    let seq_len = b.node("Slice", &[&shape, &one, &two], &[]);
    let positions = b.node("Slice", &[&pos, &zero, &seq_len, &zero], &[]);
    let emb = b.node("Add", &[&tokens, &positions], &[]);
    let mut x = layer_norm(&mut b, &mut rng, "embeddings.norm", &emb, h);

    // Additive mask: 0 where attended, -1e4 on padding, shaped [B, 1, 1, S].
    let mask_f = b.node(
        "Cast",
        &[&mask],
        &[("to", Attr::Int(DType::F32.onnx_code() as i64))],
    );
    let one_f = b.weight("const.one_f", &Tensor::scalar(1.0f32));
    let neg = b.weight("const.mask_value", &Tensor::scalar(-1e4f32));
    let inverted = b.node("Sub", &[&one_f, &mask_f], &[]);
    let additive = b.node("Mul", &[&inverted, &neg], &[]);
    let axes = b.weight("const.mask_axes", &ints(&[1, 2]));
    let additive = b.node("Unsqueeze", &[&additive, &axes], &[]);

    let split_heads = b.weight(
        "const.split_heads",
        &ints(&[0, 0, cfg.heads as i64, head_dim as i64]),
    );
    let merge_heads = b.weight("const.merge_heads", &ints(&[0, 0, h as i64]));
    let scale = b.weight(
        "const.scale",
        &Tensor::scalar(1.0 / (head_dim as f32).sqrt()),
    );
    let sqrt2 = b.weight("const.sqrt2", &Tensor::scalar(std::f32::consts::SQRT_2));
    let half = b.weight("const.half", &Tensor::scalar(0.5f32));

    for l in 0..cfg.layers {
        let p = format!("layer{l}");
        let std = 0.02;
        let proj = |b: &mut ModelBuilder,
                    rng: &mut ChaCha8Rng,
                    name: &str,
                    input: &str,
                    din: usize,
                    dout: usize| {
            let w = b.weight(
                &format!("{p}.{name}.weight"),
                &normal(rng, &[din, dout], std),
            );
            let bias = b.weight(&format!("{p}.{name}.bias"), &normal(rng, &[dout], std));
            let y = b.node("MatMul", &[input, &w], &[]);
            b.node("Add", &[&y, &bias], &[])
        };
        let heads = |b: &mut ModelBuilder, t: &str, perm: &[i64]| {
            let r = b.node("Reshape", &[t, &split_heads], &[]);
            b.node("Transpose", &[&r], &[("perm", Attr::Ints(perm.to_vec()))])
        };
        let q = proj(&mut b, &mut rng, "query", &x, h, h);
        let k = proj(&mut b, &mut rng, "key", &x, h, h);
        let v = proj(&mut b, &mut rng, "value", &x, h, h);
        let q = heads(&mut b, &q, &[0, 2, 1, 3]);
        let k = heads(&mut b, &k, &[0, 2, 3, 1]);
        let v = heads(&mut b, &v, &[0, 2, 1, 3]);
        let scores = b.node("MatMul", &[&q, &k], &[]);
        let scores = b.node("Mul", &[&scores, &scale], &[]);
        let scores = b.node("Add", &[&scores, &additive], &[]);
        let probs = b.node("Softmax", &[&scores], &[("axis", Attr::Int(-1))]);
        let ctx = b.node("MatMul", &[&probs, &v], &[]);
        let ctx = b.node(
            "Transpose",
            &[&ctx],
            &[("perm", Attr::Ints(vec![0, 2, 1, 3]))],
        );
        let ctx = b.node("Reshape", &[&ctx, &merge_heads], &[]);
        let attn = proj(&mut b, &mut rng, "attention.output", &ctx, h, h);
        let res = b.node("Add", &[&attn, &x], &[]);
        x = layer_norm(&mut b, &mut rng, &format!("{p}.attention.norm"), &res, h);

        let up = proj(&mut b, &mut rng, "ffn.up", &x, h, cfg.ffn);
        // GELU(x) = 0.5 x (1 + erf(x / sqrt 2)), written out as exporters do.
        let scaled = b.node("Div", &[&up, &sqrt2], &[]);
        let erf = b.node("Erf", &[&scaled], &[]);
        let erf1 = b.node("Add", &[&erf, &one_f], &[]);
        let gated = b.node("Mul", &[&up, &erf1], &[]);
        let gelu = b.node("Mul", &[&gated, &half], &[]);
        let down = proj(&mut b, &mut rng, "ffn.down", &gelu, cfg.ffn, h);
        let res = b.node("Add", &[&down, &x], &[]);
        x = layer_norm(&mut b, &mut rng, &format!("{p}.ffn.norm"), &res, h);
    }
    b.output(
        &x,
        "last_hidden_state",
        DType::F32,
        &[batch, seq, Dim::Fixed(h)],
    );
    b
}

fn layer_norm(b: &mut ModelBuilder, rng: &mut ChaCha8Rng, name: &str, x: &str, h: usize) -> String {
    let gamma = b.weight(&format!("{name}.weight"), &around_one(rng, h));
    let beta = b.weight(&format!("{name}.bias"), &normal(rng, &[h], 0.02));
    b.node(
        "LayerNormalization",
        &[x, &gamma, &beta],
        &[("axis", Attr::Int(-1)), ("epsilon", Attr::Float(1e-12))],
    )
}
