use crossover_core::op::nn::SoftmaxAxis;
use crossover_core::op::NnOp;
use crossover_core::Tensor;

use super::eval;
use crate::kernels::Inputs;

fn run(op: &NnOp, inputs: &[Option<&Tensor>]) -> crossover_core::Result<Vec<Tensor>> {
    eval(op, &Inputs(inputs))
}

fn vals(t: &Tensor) -> Vec<f64> {
    t.to_f64_vec().unwrap()
}

#[test]
fn softmax_is_stable_and_coerces_before_opset_13() {
    let x = Tensor::from_vec(&[2, 2], vec![1000f32, 1001.0, 0.0, 0.0]).unwrap();
    let y = run(
        &NnOp::Softmax {
            axis: SoftmaxAxis::Single(-1),
        },
        &[Some(&x)],
    )
    .unwrap();
    let v = vals(&y[0]);
    assert!((v[1] - 0.7310586).abs() < 1e-6 && (v[2] - 0.5).abs() < 1e-6);
    // Coerced to [1, 4]: one softmax over all four values.
    let y = run(
        &NnOp::Softmax {
            axis: SoftmaxAxis::Coerce2d(0),
        },
        &[Some(&x)],
    )
    .unwrap();
    assert!((vals(&y[0]).iter().sum::<f64>() - 1.0).abs() < 1e-6);
    let bad = run(
        &NnOp::Softmax {
            axis: SoftmaxAxis::Single(2),
        },
        &[Some(&x)],
    );
    assert!(bad.is_err());
}

#[test]
fn loss_rejects_out_of_range_labels() {
    let x = Tensor::from_vec(&[1, 3], vec![0.1f32, 0.2, 0.7]).unwrap();
    let t = Tensor::from_vec(&[1], vec![3i64]).unwrap();
    let op = NnOp::NegativeLogLikelihoodLoss {
        reduction: crossover_core::op::nn::LossReduction::Mean,
        ignore_index: None,
    };
    assert!(run(&op, &[Some(&x), Some(&t)]).is_err());
}

#[test]
fn attention_rejects_mismatched_heads() {
    let q = Tensor::zeros(crossover_core::DType::F32, &[1, 3, 2, 4]).unwrap();
    let k = Tensor::zeros(crossover_core::DType::F32, &[1, 2, 2, 4]).unwrap();
    let op = NnOp::Attention(Box::new(crossover_core::op::nn::AttentionAttrs {
        is_causal: false,
        q_num_heads: None,
        kv_num_heads: None,
        qk_matmul_output_mode: 0,
        scale: None,
        softcap: 0.0,
        softmax_precision: None,
        left_window: -1,
        right_window: -1,
        want_qk: false,
    }));
    assert!(run(&op, &[Some(&q), Some(&k), Some(&k)]).is_err());
}

#[test]
fn rotary_checks_position_ids() {
    let x = Tensor::zeros(crossover_core::DType::F32, &[1, 1, 2, 4]).unwrap();
    let cache = Tensor::zeros(crossover_core::DType::F32, &[4, 2]).unwrap();
    let pos = Tensor::from_vec(&[1, 2], vec![0i64, 9]).unwrap();
    let op = NnOp::RotaryEmbedding {
        interleaved: false,
        rotary_embedding_dim: 0,
        num_heads: None,
    };
    assert!(run(&op, &[Some(&x), Some(&cache), Some(&cache), Some(&pos)]).is_err());
}
