//! Every CUDA kernel against the CPU backend on random and edge shapes (odd sizes, size
//! 1, empty, large). Each case is a one-node graph run on both devices.

mod common;

use std::sync::Arc;

use crossover_core::op::conv::{AutoPad, ConvAttrs, PoolAttrs, Window};
use crossover_core::op::nn::{AttentionAttrs, SoftmaxAxis};
use crossover_core::op::{ConvOp, ElementwiseOp as E, LayoutOp as L, LinalgOp, NnOp, ReduceOp};
use crossover_core::{DType, Evaluator, Graph, Node, Op, Tensor, ValueId, ValueInfo};
use crossover_cpu::CpuBackend;
use crossover_cuda::{CudaBackend, Placement};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

struct Case {
    op: Op,
    /// Runtime inputs (`None`: an omitted optional input).
    inputs: Vec<Option<Tensor>>,
    /// Indices of `inputs` given as constants (weights, shapes, axes).
    constants: Vec<usize>,
    outputs: usize,
}

fn rand_t(shape: &[usize], seed: u64) -> Tensor {
    use rand::Rng;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    Tensor::from_vec(
        shape,
        (0..n)
            .map(|_| rng.gen_range(-2.0f32..2.0))
            .collect::<Vec<_>>(),
    )
    .unwrap()
}

fn pos_t(shape: &[usize], seed: u64) -> Tensor {
    let t = rand_t(shape, seed);
    let v: Vec<f32> = t
        .view::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.abs() + 0.1)
        .collect();
    Tensor::from_vec(shape, v).unwrap()
}

fn i64s(shape: &[usize], v: Vec<i64>) -> Tensor {
    Tensor::from_vec(shape, v).unwrap()
}

fn graph(case: &Case) -> Graph {
    let mut g = Graph::default();
    let mut ins = Vec::new();
    for (i, t) in case.inputs.iter().enumerate() {
        let Some(t) = t else {
            ins.push(None);
            continue;
        };
        let id = g.add_value(ValueInfo {
            name: format!("in{i}"),
            dtype: Some(t.dtype()),
            shape: None,
        });
        if case.constants.contains(&i) {
            g.constants.insert(id, t.clone());
        } else {
            g.inputs.push(id);
        }
        ins.push(Some(id));
    }
    let outs: Vec<Option<ValueId>> = (0..case.outputs)
        .map(|i| Some(g.add_value(ValueInfo::named(format!("out{i}")))))
        .collect();
    g.outputs = outs.iter().flatten().copied().collect();
    g.nodes.push(Node {
        name: "n".into(),
        op: case.op.clone(),
        inputs: ins,
        outputs: outs,
    });
    g
}

/// Runs `case` on both devices (twice on CUDA: the second run goes through the CUDA
/// graph path) and compares within `tol` (relative, with the same absolute floor).
fn check(cuda: &CudaBackend, name: &str, case: Case, tol: f64) {
    let g = graph(&case);
    let node = &g.nodes[0];
    let refs: Vec<Option<&Tensor>> = case.inputs.iter().map(Option::as_ref).collect();
    let want = CpuBackend::new()
        .eval(node, &refs)
        .unwrap_or_else(|e| panic!("{name}: CPU: {e}"));
    let runtime: Vec<Tensor> = case
        .inputs
        .iter()
        .enumerate()
        .filter(|(i, _)| !case.constants.contains(i))
        .filter_map(|(_, t)| t.clone())
        .collect();
    let exe = cuda
        .compile_cuda(Arc::new(g.clone()), &common::with_fallback())
        .unwrap_or_else(|e| panic!("{name}: compile: {e}"));
    assert_eq!(
        crossover_cuda::plan::partition(&g)[0],
        Placement::Device,
        "{name} should run on the GPU"
    );
    for round in 0..3 {
        let got = crossover_core::Executable::run(&exe, &runtime)
            .unwrap_or_else(|e| panic!("{name}: CUDA run {round}: {e}"))
            .outputs;
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            if let Err(m) = crossover::conformance::compare_with(g, w, tol, tol) {
                panic!("{name} (run {round}) output {k}: {m}");
            }
        }
    }
}

fn case(op: Op, inputs: Vec<Option<Tensor>>, constants: Vec<usize>) -> Case {
    Case {
        op,
        inputs,
        constants,
        outputs: 1,
    }
}

const TOL: f64 = 1e-4;

#[test]
fn unary_ops() {
    let Some(cuda) = common::cuda() else { return };
    let ops = [
        E::Relu,
        E::Gelu { tanh: false },
        E::Gelu { tanh: true },
        E::Erf,
        E::Exp,
        E::Tanh,
        E::Sigmoid,
        E::Neg,
        E::Abs,
        E::Floor,
        E::Ceil,
        E::LeakyRelu { alpha: 0.1 },
        E::Clip {
            min: Some(-0.5),
            max: Some(0.5),
        },
    ];
    for op in ops {
        for shape in [&[0][..], &[1], &[7, 13], &[1_000_003]] {
            let name = format!("{op:?} {shape:?}");
            check(
                &cuda,
                &name,
                case(
                    Op::Elementwise(op.clone()),
                    vec![Some(rand_t(shape, 1))],
                    vec![],
                ),
                TOL,
            );
        }
    }
    for op in [E::Sqrt, E::Log, E::Reciprocal] {
        check(
            &cuda,
            &format!("{op:?}"),
            case(Op::Elementwise(op), vec![Some(pos_t(&[33, 17], 2))], vec![]),
            TOL,
        );
    }
}

#[test]
fn binary_ops_broadcast() {
    let Some(cuda) = common::cuda() else { return };
    let shapes: [(&[usize], &[usize]); 7] = [
        (&[2, 3, 4], &[4]),
        (&[2, 1, 4], &[3, 1]),
        (&[1], &[5, 5]),
        (&[0, 3], &[3]),
        (&[], &[]),
        (&[64, 1, 384], &[64, 128, 1]),
        (&[2, 1, 3, 1, 2, 1, 2], &[2, 5, 3, 1, 2, 3, 2]),
    ];
    for op in [E::Add, E::Sub, E::Mul, E::Div, E::Max, E::Min] {
        for (a, b) in shapes {
            check(
                &cuda,
                &format!("{op:?} {a:?} {b:?}"),
                case(
                    Op::Elementwise(op.clone()),
                    vec![Some(rand_t(a, 3)), Some(rand_t(b, 4))],
                    vec![],
                ),
                TOL,
            );
        }
    }
    check(
        &cuda,
        "Pow",
        case(
            Op::Elementwise(E::Pow),
            vec![Some(pos_t(&[9, 5], 5)), Some(rand_t(&[5], 6))],
            vec![],
        ),
        TOL,
    );
    // A constant operand (uploaded once at compile time).
    check(
        &cuda,
        "Add const",
        case(
            Op::Elementwise(E::Add),
            vec![Some(rand_t(&[4, 8], 7)), Some(rand_t(&[8], 8))],
            vec![1],
        ),
        TOL,
    );
}

#[test]
fn matmul_f32() {
    let Some(cuda) = common::cuda() else { return };
    let shapes: [(&[usize], &[usize]); 11] = [
        (&[1, 1], &[1, 1]),
        (&[65, 33], &[33, 17]),
        (&[0, 5], &[5, 3]),
        (&[5, 0], &[0, 3]),
        (&[2, 3, 4, 5], &[2, 3, 5, 6]),
        (&[4, 5], &[3, 5, 6]),
        (&[2, 7, 5], &[5, 3]),
        (&[7], &[7, 3]),
        (&[3, 7], &[7]),
        (&[256, 512], &[512, 384]),
        (&[2, 1, 9, 8], &[1, 3, 8, 4]),
    ];
    for (a, b) in shapes {
        check(
            &cuda,
            &format!("MatMul {a:?} {b:?}"),
            case(
                Op::Linalg(LinalgOp::MatMul),
                vec![Some(rand_t(a, 9)), Some(rand_t(b, 10))],
                vec![],
            ),
            1e-3,
        );
    }
    check(
        &cuda,
        "MatMul weight",
        case(
            Op::Linalg(LinalgOp::MatMul),
            vec![Some(rand_t(&[3, 10, 64], 11)), Some(rand_t(&[64, 96], 12))],
            vec![1],
        ),
        1e-3,
    );
}

#[test]
fn matmul_tensor_cores() {
    let Some(_) = common::cuda() else { return };
    let tf32 = CudaBackend::with_options(
        0,
        crossover_cuda::CudaOptions {
            tf32: true,
            graphs: true,
        },
    )
    .unwrap();
    for (a, b) in [
        (&[65usize, 33][..], &[33usize, 17][..]),
        (&[4, 128, 64], &[4, 64, 96]),
    ] {
        check(
            &tf32,
            &format!("TF32 {a:?} {b:?}"),
            case(
                Op::Linalg(LinalgOp::MatMul),
                vec![Some(rand_t(a, 13)), Some(rand_t(b, 14))],
                vec![],
            ),
            1e-2,
        );
    }
    let cuda = CudaBackend::new(0).unwrap();
    for dt in [DType::F16, DType::BF16] {
        for (a, b) in [
            (&[1usize, 1][..], &[1usize, 1][..]),
            (&[65, 33], &[33, 17]),
            (&[3, 64, 128], &[3, 128, 80]),
        ] {
            let (x, y) = (
                rand_t(a, 15).cast(dt).unwrap(),
                rand_t(b, 16).cast(dt).unwrap(),
            );
            check(
                &cuda,
                &format!("MatMul {dt} {a:?} {b:?}"),
                case(Op::Linalg(LinalgOp::MatMul), vec![Some(x), Some(y)], vec![]),
                3e-2,
            );
        }
    }
}

#[test]
fn gemm_with_bias_and_transposes() {
    let Some(cuda) = common::cuda() else { return };
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        for c in [
            None,
            Some(&[17usize][..]),
            Some(&[9, 17]),
            Some(&[1]),
            Some(&[9, 1]),
        ] {
            let a = if ta { [33, 9] } else { [9, 33] };
            let b = if tb { [17, 33] } else { [33, 17] };
            let op = Op::Linalg(LinalgOp::Gemm {
                alpha: 0.5,
                beta: 2.0,
                trans_a: ta,
                trans_b: tb,
            });
            let inputs = vec![
                Some(rand_t(&a, 17)),
                Some(rand_t(&b, 18)),
                c.map(|c| rand_t(c, 19)),
            ];
            check(
                &cuda,
                &format!("Gemm {ta} {tb} {c:?}"),
                case(op, inputs, vec![1, 2]),
                1e-3,
            );
        }
    }
}

#[test]
fn softmax_and_layernorm() {
    let Some(cuda) = common::cuda() else { return };
    for shape in [&[3, 5][..], &[2, 1], &[4, 1000], &[2, 3, 4097], &[0, 4]] {
        check(
            &cuda,
            &format!("Softmax {shape:?}"),
            case(
                Op::Nn(NnOp::Softmax {
                    axis: SoftmaxAxis::Single(-1),
                }),
                vec![Some(rand_t(shape, 20))],
                vec![],
            ),
            TOL,
        );
        check(
            &cuda,
            &format!("LogSoftmax {shape:?}"),
            case(
                Op::Nn(NnOp::LogSoftmax {
                    axis: SoftmaxAxis::Single(-1),
                }),
                vec![Some(rand_t(shape, 21))],
                vec![],
            ),
            TOL,
        );
    }
    check(
        &cuda,
        "Softmax coerce",
        case(
            Op::Nn(NnOp::Softmax {
                axis: SoftmaxAxis::Coerce2d(1),
            }),
            vec![Some(rand_t(&[2, 3, 4], 22))],
            vec![],
        ),
        TOL,
    );
    for (shape, axis) in [
        (&[2, 3, 8][..], -1i64),
        (&[2, 3, 8], 1),
        (&[1, 1], -1),
        (&[5, 384], -1),
    ] {
        let op = Op::Nn(NnOp::LayerNormalization {
            axis,
            epsilon: 1e-5,
        });
        let trailing = &shape[(axis.rem_euclid(shape.len() as i64)) as usize..];
        check(
            &cuda,
            &format!("LayerNorm {shape:?} {axis}"),
            Case {
                op: op.clone(),
                inputs: vec![
                    Some(rand_t(shape, 23)),
                    Some(rand_t(trailing, 24)),
                    Some(rand_t(trailing, 25)),
                ],
                constants: vec![1, 2],
                outputs: 1,
            },
            1e-3,
        );
        check(
            &cuda,
            &format!("LayerNorm no bias {shape:?}"),
            Case {
                op,
                inputs: vec![Some(rand_t(shape, 23)), Some(rand_t(trailing, 24))],
                constants: vec![1],
                outputs: 1,
            },
            1e-3,
        );
    }
}

#[test]
fn batchnorm_and_reductions() {
    let Some(cuda) = common::cuda() else { return };
    let op = Op::Nn(NnOp::BatchNormalization {
        epsilon: 1e-5,
        momentum: 0.9,
        training: false,
    });
    let c = 3;
    let ins = vec![
        Some(rand_t(&[2, c, 4, 5], 26)),
        Some(rand_t(&[c], 27)),
        Some(rand_t(&[c], 28)),
        Some(rand_t(&[c], 29)),
        Some(pos_t(&[c], 30)),
    ];
    check(&cuda, "BatchNorm", case(op, ins, vec![1, 2, 3, 4]), 1e-3);
    let red = |axes: Option<Vec<i64>>, keep: bool| (axes, keep);
    for (axes, keep_dims) in [
        red(Some(vec![-1]), true),
        red(Some(vec![1, 2]), false),
        red(None, false),
        red(Some(vec![0]), true),
    ] {
        let mk = |f: fn(Option<Vec<i64>>, bool) -> ReduceOp| f(axes.clone(), keep_dims);
        let ops = [
            mk(|axes, keep_dims| ReduceOp::ReduceSum {
                axes,
                keep_dims,
                noop_with_empty_axes: false,
            }),
            mk(|axes, keep_dims| ReduceOp::ReduceMean {
                axes,
                keep_dims,
                noop_with_empty_axes: false,
            }),
            mk(|axes, keep_dims| ReduceOp::ReduceMax {
                axes,
                keep_dims,
                noop_with_empty_axes: false,
            }),
            mk(|axes, keep_dims| ReduceOp::ReduceMin {
                axes,
                keep_dims,
                noop_with_empty_axes: false,
            }),
        ];
        for op in ops {
            check(
                &cuda,
                &format!("{op:?}"),
                case(
                    Op::Reduce(op.clone()),
                    vec![Some(rand_t(&[3, 4, 5], 31))],
                    vec![],
                ),
                1e-4,
            );
        }
    }
    // Axes as an input (opset 18).
    let op = Op::Reduce(ReduceOp::ReduceMean {
        axes: None,
        keep_dims: true,
        noop_with_empty_axes: false,
    });
    check(
        &cuda,
        "ReduceMean axes input",
        case(
            op,
            vec![Some(rand_t(&[2, 3, 7], 32)), Some(i64s(&[1], vec![2]))],
            vec![1],
        ),
        1e-4,
    );
}

fn window(
    pads: Option<Vec<i64>>,
    strides: Option<Vec<i64>>,
    dilations: Option<Vec<i64>>,
    kernel: Option<Vec<i64>>,
) -> Window {
    Window {
        auto_pad: AutoPad::default(),
        kernel_shape: kernel,
        dilations,
        pads,
        strides,
    }
}

#[test]
fn conv_and_pooling() {
    let Some(cuda) = common::cuda() else { return };
    let convs = [
        (
            [1, 3, 8, 8],
            [4, 3, 3, 3],
            1,
            window(Some(vec![1, 1, 1, 1]), None, None, None),
        ),
        (
            [2, 4, 7, 9],
            [6, 2, 3, 3],
            2,
            window(None, Some(vec![2, 2]), None, None),
        ),
        (
            [1, 2, 11, 10],
            [3, 2, 3, 2],
            1,
            window(Some(vec![2, 1, 0, 1]), None, Some(vec![2, 2]), None),
        ),
        (
            [3, 5, 4, 4],
            [7, 5, 1, 1],
            1,
            window(None, None, None, None),
        ),
        (
            [1, 16, 32, 32],
            [32, 16, 3, 3],
            1,
            window(Some(vec![1, 1, 1, 1]), None, None, None),
        ),
    ];
    for (x, w, group, win) in convs {
        let op = Op::Conv(ConvOp::Conv(ConvAttrs { window: win, group }));
        let oc = w[0];
        check(
            &cuda,
            &format!("Conv {x:?} {w:?}"),
            case(
                op.clone(),
                vec![
                    Some(rand_t(&x, 33)),
                    Some(rand_t(&w, 34)),
                    Some(rand_t(&[oc], 35)),
                ],
                vec![1, 2],
            ),
            1e-3,
        );
        check(
            &cuda,
            &format!("Conv no bias {x:?}"),
            case(
                op,
                vec![Some(rand_t(&x, 33)), Some(rand_t(&w, 34))],
                vec![1],
            ),
            1e-3,
        );
    }
    let pools = [
        (
            window(None, Some(vec![2, 2]), None, Some(vec![2, 2])),
            false,
        ),
        (
            window(Some(vec![1, 1, 1, 1]), None, None, Some(vec![3, 3])),
            false,
        ),
        (window(None, Some(vec![2, 2]), None, Some(vec![3, 3])), true),
    ];
    for (win, ceil_mode) in pools {
        let pool = PoolAttrs {
            window: win,
            ceil_mode,
        };
        let x = rand_t(&[2, 3, 9, 8], 36);
        check(
            &cuda,
            &format!("MaxPool {pool:?}"),
            case(
                Op::Conv(ConvOp::MaxPool {
                    pool: pool.clone(),
                    column_major: false,
                }),
                vec![Some(x.clone())],
                vec![],
            ),
            TOL,
        );
        for count_include_pad in [false, true] {
            check(
                &cuda,
                &format!("AveragePool {pool:?} {count_include_pad}"),
                case(
                    Op::Conv(ConvOp::AveragePool {
                        pool: pool.clone(),
                        count_include_pad,
                    }),
                    vec![Some(x.clone())],
                    vec![],
                ),
                TOL,
            );
        }
    }
    check(
        &cuda,
        "GlobalAveragePool",
        case(
            Op::Conv(ConvOp::GlobalAveragePool),
            vec![Some(rand_t(&[2, 5, 7, 3], 37))],
            vec![],
        ),
        TOL,
    );
    check(
        &cuda,
        "GlobalMaxPool",
        case(
            Op::Conv(ConvOp::GlobalMaxPool),
            vec![Some(rand_t(&[1, 1, 1, 1], 38))],
            vec![],
        ),
        TOL,
    );
}

#[test]
fn layout_ops() {
    let Some(cuda) = common::cuda() else { return };
    let x = rand_t(&[2, 3, 4, 5], 39);
    check(
        &cuda,
        "Transpose",
        case(
            Op::Layout(L::Transpose {
                perm: Some(vec![0, 2, 1, 3]),
            }),
            vec![Some(x.clone())],
            vec![],
        ),
        0.0,
    );
    check(
        &cuda,
        "Transpose default",
        case(
            Op::Layout(L::Transpose { perm: None }),
            vec![Some(x.clone())],
            vec![],
        ),
        0.0,
    );
    check(
        &cuda,
        "Transpose empty",
        case(
            Op::Layout(L::Transpose { perm: None }),
            vec![Some(rand_t(&[0, 3], 40))],
            vec![],
        ),
        0.0,
    );
    check(
        &cuda,
        "Reshape",
        case(
            Op::Layout(L::Reshape { allow_zero: false }),
            vec![Some(x.clone()), Some(i64s(&[3], vec![0, -1, 5]))],
            vec![1],
        ),
        0.0,
    );
    check(
        &cuda,
        "Flatten",
        case(
            Op::Layout(L::Flatten { axis: 2 }),
            vec![Some(x.clone())],
            vec![],
        ),
        0.0,
    );
    check(
        &cuda,
        "Unsqueeze",
        case(
            Op::Layout(L::Unsqueeze {
                axes: Some(vec![0, -1]),
            }),
            vec![Some(x.clone())],
            vec![],
        ),
        0.0,
    );
    check(
        &cuda,
        "Squeeze",
        case(
            Op::Layout(L::Squeeze {
                axes: Some(vec![1]),
            }),
            vec![Some(rand_t(&[3, 1, 2], 41))],
            vec![],
        ),
        0.0,
    );
    let parts = vec![
        Some(rand_t(&[2, 1, 4], 42)),
        Some(rand_t(&[2, 3, 4], 43)),
        Some(rand_t(&[2, 0, 4], 44)),
    ];
    check(
        &cuda,
        "Concat",
        case(Op::Layout(L::Concat { axis: 1 }), parts, vec![]),
        0.0,
    );
    check(
        &cuda,
        "Concat i64",
        case(
            Op::Layout(L::Concat { axis: 0 }),
            vec![Some(i64s(&[2], vec![1, 2])), Some(i64s(&[1], vec![3]))],
            vec![],
        ),
        0.0,
    );
    let slice = |s: Vec<i64>, e: Vec<i64>, a: Vec<i64>, st: Vec<i64>| {
        let n = s.len();
        vec![
            Some(x.clone()),
            Some(i64s(&[n], s)),
            Some(i64s(&[n], e)),
            Some(i64s(&[n], a)),
            Some(i64s(&[n], st)),
        ]
    };
    let sl = Op::Layout(L::Slice {
        starts: None,
        ends: None,
        axes: None,
    });
    check(
        &cuda,
        "Slice",
        case(
            sl.clone(),
            slice(vec![1, 0], vec![3, -1], vec![1, 3], vec![1, 2]),
            vec![1, 2, 3, 4],
        ),
        0.0,
    );
    check(
        &cuda,
        "Slice backwards",
        case(
            sl.clone(),
            slice(vec![-1], vec![i64::MIN], vec![2], vec![-1]),
            vec![1, 2, 3, 4],
        ),
        0.0,
    );
    check(
        &cuda,
        "Slice empty",
        case(
            sl,
            slice(vec![2], vec![2], vec![0], vec![1]),
            vec![1, 2, 3, 4],
        ),
        0.0,
    );
    let table = rand_t(&[10, 6], 45);
    check(
        &cuda,
        "Gather rows",
        case(
            Op::Layout(L::Gather { axis: 0 }),
            vec![
                Some(table.clone()),
                Some(i64s(&[2, 3], vec![0, 9, -1, 4, 4, 2])),
            ],
            vec![0],
        ),
        0.0,
    );
    check(
        &cuda,
        "Gather cols (const idx)",
        case(
            Op::Layout(L::Gather { axis: 1 }),
            vec![Some(table), Some(i64s(&[2], vec![5, 0]))],
            vec![1],
        ),
        0.0,
    );
    let cast = |to| Op::Elementwise(E::Cast { to, saturate: true });
    check(
        &cuda,
        "Cast i64",
        case(
            cast(DType::F32),
            vec![Some(i64s(&[4], vec![-3, 0, 7, 1 << 40]))],
            vec![],
        ),
        0.0,
    );
    check(
        &cuda,
        "Cast f16",
        case(cast(DType::F16), vec![Some(rand_t(&[33], 46))], vec![]),
        0.0,
    );
    check(
        &cuda,
        "Cast bf16",
        case(cast(DType::BF16), vec![Some(rand_t(&[33], 47))], vec![]),
        0.0,
    );
}

#[test]
fn fused_attention() {
    let Some(cuda) = common::cuda() else { return };
    let attrs = |heads: Option<usize>| {
        Op::Nn(NnOp::Attention(Box::new(AttentionAttrs {
            is_causal: false,
            q_num_heads: heads,
            kv_num_heads: heads,
            qk_matmul_output_mode: 0,
            scale: None,
            softcap: 0.0,
            softmax_precision: None,
            left_window: -1,
            right_window: -1,
            want_qk: false,
        })))
    };
    for (b, h, s, d) in [
        (1, 1, 1, 1),
        (2, 12, 17, 32),
        (3, 2, 64, 128),
        (1, 4, 5, 33),
    ] {
        let (q, k, v) = (
            rand_t(&[b, h, s, d], 48),
            rand_t(&[b, h, s, d], 49),
            rand_t(&[b, h, s, d], 50),
        );
        check(
            &cuda,
            &format!("Attention {b}x{h}x{s}x{d}"),
            case(
                attrs(None),
                vec![Some(q.clone()), Some(k.clone()), Some(v.clone())],
                vec![],
            ),
            1e-3,
        );
        let mask = rand_t(&[b, 1, 1, s], 51);
        check(
            &cuda,
            &format!("Attention mask {b}x{h}x{s}x{d}"),
            case(
                attrs(None),
                vec![Some(q), Some(k), Some(v), Some(mask)],
                vec![],
            ),
            1e-3,
        );
    }
    let (q, k, v) = (
        rand_t(&[2, 9, 48], 52),
        rand_t(&[2, 9, 48], 53),
        rand_t(&[2, 9, 48], 54),
    );
    check(
        &cuda,
        "Attention 3-D",
        case(attrs(Some(4)), vec![Some(q), Some(k), Some(v)], vec![]),
        1e-3,
    );
}
