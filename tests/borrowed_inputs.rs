//! Inputs borrowed from the caller — numpy arrays, through the Python binding — are read
//! in place on the CPU: the built-in models give the same outputs as with owned inputs,
//! and no kernel copies a borrowed input on the way.

use std::ptr::NonNull;
use std::sync::Arc;

use crossover::conformance::compare_with;
use crossover::core::Element;
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

fn check(model: ZooModel, batch: usize) {
    let session = Session::builder()
        .device(DeviceId::CPU)
        .threads(2)
        .build(model.model().unwrap())
        .unwrap();
    let owned = model.sample_inputs(batch, 16);
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
        compare_with(g, w, 0.0, 0.0).unwrap_or_else(|m| panic!("{}: {m}", model.name()));
    }
    for (name, t) in &borrowed {
        assert!(
            t.is_borrowed(),
            "{} batch {batch}: input {name:?} was copied during the run",
            model.name()
        );
    }
}

#[test]
fn built_in_models_read_borrowed_inputs_in_place() {
    for model in ZooModel::ALL {
        for batch in [1, 3] {
            check(model, batch);
        }
    }
}
