//! Every kernel against the CPU backend on random, odd and edge shapes (size 1, odd
//! sizes, empty). Models are compiled without a host fallback, so a node that did not
//! run on the GPU fails the test instead of passing through the CPU.

mod common;

use std::sync::Arc;

use crossover_core::builder::{Attr, ModelBuilder};
use crossover_core::{Backend, CompileOptions, DType, Dim, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

enum In {
    /// A graph input (uploaded per run).
    Data(Tensor),
    /// An initializer (uploaded once at compile).
    Weight(Tensor),
}

fn rand_t(shape: &[usize], lo: f32, hi: f32, seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = shape.iter().product();
    Tensor::from_vec(
        shape,
        (0..n).map(|_| rng.gen_range(lo..hi)).collect::<Vec<f32>>(),
    )
    .expect("sized")
}

fn data(shape: &[usize]) -> In {
    In::Data(rand_t(
        shape,
        -2.0,
        2.0,
        shape.iter().sum::<usize>() as u64 + 1,
    ))
}

fn weight(shape: &[usize]) -> In {
    In::Weight(rand_t(
        shape,
        -1.0,
        1.0,
        shape.iter().product::<usize>() as u64 + 7,
    ))
}

fn ints(v: &[i64]) -> In {
    In::Weight(Tensor::from_vec(&[v.len()], v.to_vec()).expect("sized"))
}

/// Builds a one-node model, runs it on both backends and compares every output.
fn check_opset(opset: i64, op: &str, inputs: Vec<In>, attrs: &[(&str, Attr)], outputs: usize) {
    let Some(gpu) = common::gpu() else { return };
    let mut b = ModelBuilder::new(op).opset(opset);
    let mut names = Vec::new();
    let mut feeds = Vec::new();
    for (i, x) in inputs.iter().enumerate() {
        let name = format!("in{i}");
        match x {
            In::Data(t) => {
                let dims: Vec<Dim> = t.shape().iter().map(|&d| Dim::Fixed(d)).collect();
                b.input(&name, t.dtype(), &dims);
                feeds.push(t.clone());
            }
            In::Weight(t) => {
                b.weight(&name, t);
            }
        }
        names.push(name);
    }
    let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    let outs = b.node_n(op, &refs, attrs, outputs);
    for (i, o) in outs.iter().enumerate() {
        b.output(o, &format!("out{i}"), DType::F32, &[]);
    }
    let model = b.into_model().unwrap_or_else(|e| panic!("{op}: {e}"));
    let graph = Arc::new(model.graph);
    let want = common::run_cpu(&graph, &feeds);
    let exe = gpu
        .compile(graph.clone(), &CompileOptions::default())
        .unwrap_or_else(|e| panic!("{op} compiles on wgpu: {e}"));
    // Twice: the second run replays the recorded plan.
    for round in 0..2 {
        let got = exe
            .run(&feeds)
            .unwrap_or_else(|e| panic!("{op} runs on wgpu: {e}"))
            .outputs;
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.shape(), w.shape(), "{op} output shape (round {round})");
            let err = common::max_error(g, w);
            assert!(
                err <= 1e-4,
                "{op} {attrs:?}: max error {err} (round {round})"
            );
        }
    }
}

fn check(op: &str, inputs: Vec<In>, attrs: &[(&str, Attr)]) {
    check_opset(17, op, inputs, attrs, 1);
}

const EDGE_SHAPES: &[&[usize]] = &[&[3, 5, 7], &[1], &[0], &[2, 0, 3], &[257], &[]];

#[test]
fn unary_ops() {
    let ops: &[(&str, &[(&str, Attr)])] = &[
        ("Abs", &[]),
        ("Neg", &[]),
        ("Exp", &[]),
        ("Erf", &[]),
        ("Sin", &[]),
        ("Cos", &[]),
        ("Atan", &[]),
        ("Sinh", &[]),
        ("Cosh", &[]),
        ("Asinh", &[]),
        ("Ceil", &[]),
        ("Floor", &[]),
        ("Round", &[]),
        ("Sign", &[]),
        ("Tanh", &[]),
        ("Sigmoid", &[]),
        ("Relu", &[]),
        ("LeakyRelu", &[("alpha", Attr::Float(0.1))]),
        ("Elu", &[("alpha", Attr::Float(0.7))]),
        ("Selu", &[]),
        ("Celu", &[]),
        ("Gelu", &[]),
        ("HardSigmoid", &[]),
        ("HardSwish", &[]),
        ("Softplus", &[]),
        ("Softsign", &[]),
        ("Mish", &[]),
        ("Shrink", &[("lambd", Attr::Float(0.6))]),
        ("ThresholdedRelu", &[]),
    ];
    for (op, attrs) in ops {
        for shape in EDGE_SHAPES {
            check(op, vec![data(shape)], attrs);
        }
    }
    check_opset(
        20,
        "Gelu",
        vec![data(&[4, 9])],
        &[("approximate", Attr::String("tanh".into()))],
        1,
    );
    // Domains that need positive or bounded inputs.
    let pos = || In::Data(rand_t(&[5, 7], 0.1, 3.0, 3));
    let unit = || In::Data(rand_t(&[5, 7], -0.9, 0.9, 4));
    for op in ["Sqrt", "Log", "Reciprocal"] {
        check(op, vec![pos()], &[]);
    }
    for op in ["Asin", "Acos", "Atanh", "Tan"] {
        check(op, vec![unit()], &[]);
    }
    check("Acosh", vec![In::Data(rand_t(&[5, 7], 1.0, 4.0, 5))], &[]);
    check_opset(
        10,
        "Clip",
        vec![data(&[4, 6])],
        &[("min", Attr::Float(-0.5)), ("max", Attr::Float(0.7))],
        1,
    );
    check(
        "Clip",
        vec![
            data(&[4, 6]),
            In::Weight(Tensor::scalar(-0.3f32)),
            In::Weight(Tensor::scalar(0.2f32)),
        ],
        &[],
    );
}

#[test]
fn binary_ops_broadcast() {
    let pairs: &[(&[usize], &[usize])] = &[
        (&[2, 3, 4], &[3, 4]),
        (&[2, 1, 4], &[1, 3, 1]),
        (&[1], &[5]),
        (&[], &[3, 2]),
        (&[0, 3], &[1, 3]),
        (&[7, 1, 1, 2, 1, 3], &[1, 5, 4, 1, 6, 1]),
    ];
    for op in ["Add", "Sub", "Mul", "Div", "Max", "Min"] {
        for (a, b) in pairs {
            check(op, vec![data(a), data(b)], &[]);
        }
    }
    check("Add", vec![data(&[3, 4]), weight(&[4])], &[]);
    check("PRelu", vec![data(&[2, 3, 4]), weight(&[3, 1])], &[]);
    check(
        "Pow",
        vec![In::Data(rand_t(&[3, 4], 0.1, 3.0, 9)), data(&[4])],
        &[],
    );
    // Negative bases with integer exponents follow C's pow.
    check(
        "Pow",
        vec![
            data(&[3, 4]),
            In::Weight(Tensor::from_vec(&[4], vec![2.0f32, 3.0, 0.0, -1.0]).unwrap()),
        ],
        &[],
    );
    check_opset(
        17,
        "Sum",
        vec![data(&[3, 4]), data(&[4]), data(&[1, 4])],
        &[],
        1,
    );
    check_opset(
        17,
        "Mean",
        vec![data(&[3, 4]), data(&[4]), data(&[1, 4])],
        &[],
        1,
    );
    check_opset(17, "Max", vec![data(&[2, 3])], &[], 1);
}

#[test]
fn matmul_shapes() {
    let cases: &[(&[usize], &[usize])] = &[
        (&[1, 1], &[1, 1]),
        (&[7, 13], &[13, 5]),
        (&[65, 130], &[130, 67]),
        (&[2, 3, 17, 9], &[9, 33]),
        (&[4], &[4, 3]),
        (&[2, 5, 4], &[4]),
        (&[2, 1, 3, 4], &[1, 5, 4, 6]),
        (&[3, 0], &[0, 4]),
        (&[0, 3], &[3, 4]),
        (&[3, 1, 4, 7], &[2, 7, 5]),
    ];
    for (a, b) in cases {
        check("MatMul", vec![data(a), data(b)], &[]);
    }
    check("MatMul", vec![data(&[9, 70]), weight(&[70, 31])], &[]);
    // Sizes a multiple of 4 (the vec4 kernel on software adapters), partial tiles included.
    for (a, b) in [
        (&[130, 68][..], &[68, 72][..]),
        (&[2, 1, 8, 12], &[1, 3, 12, 20]),
        (&[1, 3, 5, 32], &[1, 3, 32, 12]),
    ] {
        check("MatMul", vec![data(a), data(b)], &[]);
    }
}

#[test]
fn gemm_variants() {
    for (ta, tb) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
        let a: &[usize] = if ta == 1 { &[19, 6] } else { &[6, 19] };
        let b: &[usize] = if tb == 1 { &[70, 19] } else { &[19, 70] };
        for c in [&[70usize][..], &[6, 70], &[1, 70], &[6, 1], &[]] {
            check(
                "Gemm",
                vec![data(a), weight(b), weight(c)],
                &[
                    ("transA", Attr::Int(ta)),
                    ("transB", Attr::Int(tb)),
                    ("alpha", Attr::Float(0.5)),
                    ("beta", Attr::Float(2.0)),
                ],
            );
        }
    }
    check("Gemm", vec![data(&[3, 5]), weight(&[5, 2])], &[]);
    // Aligned sizes with every transpose (the vec4 kernel on software adapters).
    for (ta, tb) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
        let a: &[usize] = if ta == 1 { &[20, 72] } else { &[72, 20] };
        let b: &[usize] = if tb == 1 { &[68, 20] } else { &[20, 68] };
        check(
            "Gemm",
            vec![data(a), weight(b), weight(&[68])],
            &[("transA", Attr::Int(ta)), ("transB", Attr::Int(tb))],
        );
    }
    // Few rows: the one-invocation-per-output path, with every transpose and C form.
    for (ta, tb) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
        let a: &[usize] = if ta == 1 { &[37, 2] } else { &[2, 37] };
        let b: &[usize] = if tb == 1 { &[9, 37] } else { &[37, 9] };
        check(
            "Gemm",
            vec![data(a), weight(b), weight(&[2, 1])],
            &[
                ("transA", Attr::Int(ta)),
                ("transB", Attr::Int(tb)),
                ("alpha", Attr::Float(1.5)),
            ],
        );
    }
}

#[test]
fn gemm_relu_fuses() {
    let Some(gpu) = common::gpu() else { return };
    let mut b = ModelBuilder::new("fused");
    let x = b.input("x", DType::F32, &[Dim::Fixed(5), Dim::Fixed(33)]);
    let w = b.weight("w", &rand_t(&[17, 33], -1.0, 1.0, 1));
    let c = b.weight("c", &rand_t(&[17], -1.0, 1.0, 2));
    let h = b.node("Gemm", &[&x, &w, &c], &[("transB", Attr::Int(1))]);
    let h = b.node("Relu", &[&h], &[]);
    b.output(&h, "y", DType::F32, &[]);
    let graph = Arc::new(b.into_model().unwrap().graph);
    let feeds = vec![rand_t(&[5, 33], -1.0, 1.0, 3)];
    let want = common::run_cpu(&graph, &feeds);
    let exe = gpu.compile(graph, &CompileOptions::default()).unwrap();
    let got = exe.run(&feeds).unwrap().outputs;
    assert!(common::max_error(&got[0], &want[0]) <= 1e-5);
}

#[test]
fn softmax_and_norms() {
    for shape in [&[3, 5, 7][..], &[1, 1], &[2, 300], &[4, 0]] {
        check_opset(
            13,
            "Softmax",
            vec![data(shape)],
            &[("axis", Attr::Int(-1))],
            1,
        );
        check_opset(13, "LogSoftmax", vec![data(shape)], &[], 1);
    }
    check_opset(
        13,
        "Softmax",
        vec![data(&[3, 5, 7])],
        &[("axis", Attr::Int(1))],
        1,
    );
    check_opset(
        13,
        "Softmax",
        vec![data(&[3, 5, 7])],
        &[("axis", Attr::Int(0))],
        1,
    );
    check_opset(
        11,
        "Softmax",
        vec![data(&[3, 5, 7])],
        &[("axis", Attr::Int(1))],
        1,
    );
    check(
        "LayerNormalization",
        vec![data(&[4, 384]), weight(&[384]), weight(&[384])],
        &[],
    );
    check(
        "LayerNormalization",
        vec![data(&[2, 3, 5]), weight(&[5])],
        &[],
    );
    check(
        "LayerNormalization",
        vec![data(&[2, 3, 5]), weight(&[3, 5]), weight(&[3, 5])],
        &[("axis", Attr::Int(1)), ("epsilon", Attr::Float(1e-3))],
    );
    check(
        "LayerNormalization",
        vec![data(&[1, 1]), weight(&[1]), weight(&[1])],
        &[],
    );
    let var = In::Weight(rand_t(&[3], 0.5, 2.0, 11));
    check(
        "BatchNormalization",
        vec![
            data(&[2, 3, 4, 5]),
            weight(&[3]),
            weight(&[3]),
            weight(&[3]),
            var,
        ],
        &[("epsilon", Attr::Float(1e-3))],
    );
}

#[test]
fn conv_and_pooling() {
    let attrs_sets: Vec<Vec<(&str, Attr)>> = vec![
        vec![],
        vec![("pads", Attr::Ints(vec![1, 1, 1, 1]))],
        vec![
            ("strides", Attr::Ints(vec![2, 2])),
            ("pads", Attr::Ints(vec![0, 1, 2, 1])),
        ],
        vec![
            ("dilations", Attr::Ints(vec![2, 1])),
            ("auto_pad", Attr::String("SAME_UPPER".into())),
        ],
    ];
    for attrs in &attrs_sets {
        check(
            "Conv",
            vec![data(&[2, 3, 9, 8]), weight(&[4, 3, 3, 3]), weight(&[4])],
            attrs,
        );
    }
    check(
        "Conv",
        vec![data(&[1, 4, 7, 7]), weight(&[6, 2, 3, 3])],
        &[("group", Attr::Int(2))],
    );
    check(
        "Conv",
        vec![data(&[2, 3, 11]), weight(&[5, 3, 4]), weight(&[5])],
        &[],
    );
    check(
        "Conv",
        vec![data(&[1, 1, 1, 1]), weight(&[1, 1, 1, 1])],
        &[],
    );
    let k = ("kernel_shape", Attr::Ints(vec![3, 2]));
    for op in ["MaxPool", "AveragePool"] {
        check(op, vec![data(&[2, 3, 9, 8])], std::slice::from_ref(&k));
        check(
            op,
            vec![data(&[2, 3, 9, 8])],
            &[
                k.clone(),
                ("strides", Attr::Ints(vec![2, 2])),
                ("pads", Attr::Ints(vec![1, 1, 1, 0])),
            ],
        );
        check(
            op,
            vec![data(&[1, 2, 10, 7])],
            &[
                k.clone(),
                ("strides", Attr::Ints(vec![3, 2])),
                ("ceil_mode", Attr::Int(1)),
            ],
        );
        check(
            op,
            vec![data(&[2, 3, 11])],
            &[("kernel_shape", Attr::Ints(vec![3]))],
        );
    }
    check(
        "AveragePool",
        vec![data(&[2, 3, 9, 8])],
        &[
            k.clone(),
            ("pads", Attr::Ints(vec![1, 1, 1, 1])),
            ("count_include_pad", Attr::Int(1)),
        ],
    );
    for op in ["GlobalAveragePool", "GlobalMaxPool"] {
        check(op, vec![data(&[2, 3, 5, 4])], &[]);
        check(op, vec![data(&[1, 1, 1, 1])], &[]);
    }
}

#[test]
fn layout_ops() {
    check(
        "Transpose",
        vec![data(&[2, 3, 4])],
        &[("perm", Attr::Ints(vec![2, 0, 1]))],
    );
    check("Transpose", vec![data(&[5, 7])], &[]);
    check("Transpose", vec![data(&[0, 3])], &[]);
    check(
        "Slice",
        vec![
            data(&[5, 7]),
            ints(&[1, -1]),
            ints(&[4, 0]),
            ints(&[0, 1]),
            ints(&[2, -2]),
        ],
        &[],
    );
    check(
        "Slice",
        vec![
            data(&[6, 4]),
            ints(&[0]),
            ints(&[i64::MAX]),
            ints(&[0]),
            ints(&[-1]),
        ],
        &[],
    );
    check("Slice", vec![data(&[6, 4]), ints(&[10]), ints(&[20])], &[]);
    check_opset(
        13,
        "Concat",
        vec![data(&[2, 3]), data(&[2, 1]), data(&[2, 0])],
        &[("axis", Attr::Int(1))],
        1,
    );
    check_opset(
        13,
        "Concat",
        vec![data(&[2, 3]), weight(&[1, 3])],
        &[("axis", Attr::Int(-2))],
        1,
    );
    check_opset(
        13,
        "Split",
        vec![data(&[5, 6]), ints(&[2, 4])],
        &[("axis", Attr::Int(1))],
        2,
    );
    check_opset(13, "Split", vec![data(&[6, 2])], &[], 3);
    check("Expand", vec![data(&[3, 1]), ints(&[2, 3, 4])], &[]);
    check("Expand", vec![data(&[]), ints(&[2, 2])], &[]);
    check("Reshape", vec![data(&[2, 3, 4]), ints(&[4, -1])], &[]);
    check("Flatten", vec![data(&[2, 3, 4])], &[("axis", Attr::Int(2))]);
    check("Unsqueeze", vec![data(&[2, 3]), ints(&[0, 3])], &[]);
    check("Squeeze", vec![data(&[2, 1, 3]), ints(&[1])], &[]);
    let idx = |v: &[i64], s: &[usize]| In::Data(Tensor::from_vec(s, v.to_vec()).unwrap());
    check(
        "Gather",
        vec![data(&[5, 4]), idx(&[0, -1, 2, 2], &[2, 2])],
        &[],
    );
    check(
        "Gather",
        vec![data(&[5, 4, 3]), idx(&[3, 0], &[2])],
        &[("axis", Attr::Int(1))],
    );
    check("Gather", vec![weight(&[50, 8]), idx(&[7], &[])], &[]);
    check("Gather", vec![weight(&[50, 8]), idx(&[], &[0])], &[]);
}

#[test]
fn reductions() {
    let shape = [3, 4, 5];
    // ReduceSum takes axes as input from opset 13; the others from 18.
    for keep in [0, 1] {
        for axes in [&[1i64][..], &[0, 2], &[-1], &[]] {
            let mut ins = vec![data(&shape)];
            if !axes.is_empty() {
                ins.push(ints(axes));
            }
            check("ReduceSum", ins, &[("keepdims", Attr::Int(keep))]);
            for op in [
                "ReduceMean",
                "ReduceMax",
                "ReduceMin",
                "ReduceL1",
                "ReduceL2",
                "ReduceLogSumExp",
                "ReduceSumSquare",
            ] {
                let attrs: Vec<(&str, Attr)> = if axes.is_empty() {
                    vec![("keepdims", Attr::Int(keep))]
                } else {
                    vec![
                        ("keepdims", Attr::Int(keep)),
                        ("axes", Attr::Ints(axes.to_vec())),
                    ]
                };
                check(op, vec![data(&shape)], &attrs);
            }
        }
    }
    let pos = In::Data(rand_t(&[3, 4], 0.5, 1.5, 8));
    check("ReduceProd", vec![pos], &[("axes", Attr::Ints(vec![1]))]);
    check(
        "ReduceLogSum",
        vec![In::Data(rand_t(&[3, 4], 0.5, 1.5, 8))],
        &[("axes", Attr::Ints(vec![0]))],
    );
    check("ReduceSum", vec![data(&[1])], &[]);
}

#[test]
fn missing_fallback_is_a_clear_error() {
    let Some(gpu) = common::gpu() else { return };
    let mut b = ModelBuilder::new("cumsum");
    let x = b.input("x", DType::F32, &[Dim::Fixed(4)]);
    let axis = b.weight("axis", &Tensor::scalar(0i64));
    let y = b.node("CumSum", &[&x, &axis], &[]);
    b.output(&y, "y", DType::F32, &[]);
    let model = b.into_model().expect("CumSum imports");
    let err = gpu
        .compile(Arc::new(model.graph), &CompileOptions::default())
        .err()
        .expect("no kernel and no fallback");
    assert!(err.to_string().contains("host_fallback"), "{err}");
}

/// One attention case: `batch` axes, query and key counts, head sizes, the scale node
/// (`Mul`/`Div` by a constant), the mask's shape, whether `v` is computed after the
/// scores (a `Neg` node placed there, as exporters order them), and whether the
/// probabilities are also a graph output (then the chain must not fuse).
struct Attention<'a> {
    batch: &'a [usize],
    sq: usize,
    sk: usize,
    d: usize,
    dv: usize,
    scale: Option<(&'a str, f32)>,
    mask: Option<&'a [usize]>,
    late_v: bool,
    probs_out: bool,
}

impl<'a> Attention<'a> {
    /// Scaled by `Mul` 0.35, no mask, `v` computed first, probabilities read only inside.
    fn new(batch: &'a [usize], sq: usize, sk: usize, d: usize, dv: usize) -> Self {
        Attention {
            batch,
            sq,
            sk,
            d,
            dv,
            scale: Some(("Mul", 0.35)),
            mask: None,
            late_v: false,
            probs_out: false,
        }
    }
}

/// Runs `MatMul(q, kt) → scale → Add mask → Softmax → MatMul v` on both backends and
/// returns whether the GPU fused it: a fused run's only work buffer is its output.
fn check_attention(c: &Attention) -> Option<bool> {
    let gpu = common::gpu()?;
    let shape = |tail: [usize; 2]| [c.batch, &tail].concat();
    let mut b = ModelBuilder::new("attention").opset(17);
    let mut feeds = Vec::new();
    let mut input = |b: &mut ModelBuilder, name: &str, s: Vec<usize>| {
        let dims: Vec<Dim> = s.iter().map(|&d| Dim::Fixed(d)).collect();
        feeds.push(rand_t(&s, -2.0, 2.0, feeds.len() as u64 + 11));
        b.input(name, DType::F32, &dims)
    };
    let q = input(&mut b, "q", shape([c.sq, c.d]));
    let kt = input(&mut b, "kt", shape([c.d, c.sk]));
    let v = input(&mut b, "v", shape([c.sk, c.dv]));
    let mask = c.mask.map(|m| input(&mut b, "mask", m.to_vec()));
    let mut s = b.node("MatMul", &[&q, &kt], &[]);
    let v = if c.late_v {
        b.node("Neg", &[&v], &[])
    } else {
        v
    };
    if let Some((op, k)) = c.scale {
        let k = b.weight("scale", &Tensor::scalar(k));
        s = b.node(op, &[&s, &k], &[]);
    }
    if let Some(m) = &mask {
        // The mask first, as some exporters write it.
        s = b.node("Add", &[m, &s], &[]);
    }
    let p = b.node("Softmax", &[&s], &[("axis", Attr::Int(-1))]);
    let o = b.node("MatMul", &[&p, &v], &[]);
    b.output(&o, "out", DType::F32, &[]);
    if c.probs_out {
        b.output(&p, "probs", DType::F32, &[]);
    }
    let graph = Arc::new(b.into_model().expect("imports").graph);
    let want = common::run_cpu(&graph, &feeds);
    let exe = gpu
        .compile(graph, &CompileOptions::default())
        .expect("compiles");
    let mut peak = 0;
    for round in 0..2 {
        let got = exe.run(&feeds).expect("runs");
        for (g, w) in got.outputs.iter().zip(&want) {
            assert_eq!(g.shape(), w.shape());
            let err = common::max_error(g, w);
            assert!(
                err <= 1e-4,
                "{:?} sq {} sk {} d {} dv {}: max error {err} (round {round})",
                c.batch,
                c.sq,
                c.sk,
                c.d,
                c.dv
            );
        }
        peak = got.peak_bytes;
    }
    let bytes = |rows: usize| (c.batch.iter().product::<usize>() * rows * c.dv * 4).max(4) as u64;
    let late_v = if c.late_v { bytes(c.sk) } else { 0 };
    Some(peak == bytes(c.sq) + late_v)
}

#[test]
fn attention_fuses_and_matches_the_cpu() {
    let case = Attention::new;
    let fused = [
        Attention {
            mask: Some(&[2, 1, 1, 7]),
            late_v: true,
            ..case(&[2, 3], 5, 7, 8, 6)
        },
        // One query, one key.
        Attention {
            scale: Some(("Div", 2.0)),
            ..case(&[1, 2], 1, 1, 3, 5)
        },
        // Odd head sizes, a 2-D mask.
        Attention {
            mask: Some(&[9, 9]),
            ..case(&[1, 4], 9, 9, 7, 5)
        },
        // One batch axis, more keys than invocations, no scale, a full mask.
        Attention {
            scale: None,
            mask: Some(&[3, 4, 130]),
            ..case(&[3], 4, 130, 16, 16)
        },
        // More keys and channels than one pass of the workgroup covers.
        Attention {
            mask: Some(&[1, 1, 3, 300]),
            ..case(&[1, 1], 3, 300, 5, 260)
        },
    ];
    for c in &fused {
        let Some(f) = check_attention(c) else { return };
        assert!(f, "{:?} sq {} sk {}: not fused", c.batch, c.sq, c.sk);
    }
    let unfused = [
        // Too many keys for the kernel's workgroup memory: the deferred nodes run one by one.
        Attention {
            late_v: true,
            ..case(&[1], 2, 1030, 4, 3)
        },
        // The probabilities are read outside the chain.
        Attention {
            mask: Some(&[2, 1, 1, 5]),
            probs_out: true,
            ..case(&[2, 2], 3, 5, 4, 4)
        },
    ];
    for c in &unfused {
        let Some(f) = check_attention(c) else { return };
        assert!(!f, "{:?} sq {} sk {}: fused", c.batch, c.sq, c.sk);
    }
}
