//! Inputs borrowed from the caller — numpy arrays, through the Python binding — are read
//! in place on the CPU: the built-in models give the same outputs as with owned inputs,
//! and no kernel copies a borrowed input on the way.

use std::ptr::NonNull;
use std::sync::Arc;

use crossover::conformance::compare_with;
use crossover::core::builder::ModelBuilder;
use crossover::core::{Dim, Element, Model};
use crossover::zoo::ZooModel;
use crossover::{DType, DeviceId, Session, Tensor};

fn feed(inputs: &[(String, Tensor)]) -> Vec<(&str, Tensor)> {
    inputs
        .iter()
        .map(|(n, t)| (n.as_str(), t.clone()))
        .collect()
}

/// `t`'s elements in a buffer the tensor only borrows, as numpy's would be.
fn lent<T: Element + Copy>(t: &Tensor) -> Tensor {
    let data: Arc<Vec<T>> = Arc::new(t.view::<T>().unwrap().iter().copied().collect());
    let ptr = NonNull::new(data.as_ptr() as *mut T).unwrap();
    // SAFETY: the Box keeps the Vec alive and nothing writes it.
    unsafe { Tensor::borrowed(t.shape(), ptr, Box::new(data)) }.unwrap()
}

fn check(name: &str, model: Model, owned: Vec<(String, Tensor)>) {
    let session = Session::builder()
        .device(DeviceId::CPU)
        .threads(2)
        .build(model)
        .unwrap();
    let borrowed: Vec<(String, Tensor)> = owned
        .iter()
        .map(|(n, t)| {
            let b = match t.dtype() {
                DType::F32 => lent::<f32>(t),
                DType::I64 => lent::<i64>(t),
                other => panic!("no sample input of {other}"),
            };
            (n.clone(), b)
        })
        .collect();
    let want = session.run(&feed(&owned)).unwrap();
    let got = session.run(&feed(&borrowed)).unwrap();
    for (g, w) in got.iter().zip(&want) {
        compare_with(g, w, 0.0, 0.0).unwrap_or_else(|m| panic!("{name}: {m}"));
    }
    for (input, t) in &borrowed {
        assert!(
            t.is_borrowed(),
            "{name}: input {input:?} was copied during the run"
        );
    }
}

/// `(x - mean) * scale`, as preprocessing graphs begin: elementwise ops read in place too.
fn normalise() -> Model {
    let mut b = ModelBuilder::new("normalise");
    let shape = [Dim::Param("batch".into()), Dim::Fixed(3)];
    let x = b.input("x", DType::F32, &shape);
    let mean = b.weight(
        "mean",
        &Tensor::from_vec(&[3], vec![0.5f32, 0.4, 0.3]).unwrap(),
    );
    let scale = b.weight(
        "scale",
        &Tensor::from_vec(&[3], vec![2.0f32, 3.0, 4.0]).unwrap(),
    );
    let centred = b.node("Sub", &[&x, &mean], &[]);
    let y = b.node("Mul", &[&centred, &scale], &[]);
    b.output(&y, "y", DType::F32, &shape);
    b.into_model().unwrap()
}

#[test]
fn built_in_models_read_borrowed_inputs_in_place() {
    for model in ZooModel::ALL {
        for batch in [1, 3] {
            let name = format!("{} batch {batch}", model.name());
            check(
                &name,
                model.model().unwrap(),
                model.sample_inputs(batch, 16),
            );
        }
    }
    let x = Tensor::from_vec(&[2, 3], vec![0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
    check("normalise", normalise(), vec![("x".into(), x)]);
}
