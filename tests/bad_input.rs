//! Bad input never panics: each case gets an error that names what is wrong.

use crossover::core::onnx::{tensor_proto::DataLocation, ModelProto, StringStringEntryProto};
use crossover::zoo::ZooModel;
use crossover::{Attr, DType, DeviceId, Dim, ErrorKind, Model, ModelBuilder, Session, Tensor};
use prost::Message;

fn err_of<T>(r: crossover::Result<T>) -> crossover::Error {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

fn relu_model() -> ModelBuilder {
    let mut b = ModelBuilder::new("relu");
    let x = b.input("x", DType::F32, &[Dim::Param("n".into()), Dim::Fixed(4)]);
    let y = b.node("Relu", &[&x], &[]);
    b.output(
        &y,
        "y",
        DType::F32,
        &[Dim::Param("n".into()), Dim::Fixed(4)],
    );
    b
}

#[test]
fn truncated_and_garbage_bytes() {
    let bytes = ZooModel::Mlp.onnx_bytes();
    for cut in [1, 17, bytes.len() / 2, bytes.len() - 1] {
        let e = err_of(Model::from_bytes(&bytes[..cut]));
        assert_eq!(e.kind(), ErrorKind::InvalidModel, "{e}");
    }
    let e = err_of(Model::from_bytes(
        b"\xff\xfe definitely not protobuf \x00\x01",
    ));
    assert_eq!(e.kind(), ErrorKind::InvalidModel, "{e}");
    let e = err_of(Model::load("/no/such/model.onnx"));
    assert!(e.to_string().contains("/no/such/model.onnx"), "{e}");
}

#[test]
fn missing_tensor_is_named() {
    let mut b = relu_model();
    b.node("Add", &["x", "nowhere"], &[]);
    let e = err_of(b.into_model()).to_string();
    assert!(e.contains("\"nowhere\"") && e.contains("Add"), "{e}");
}

#[test]
fn cycles_are_refused() {
    let mut p: ModelProto = relu_model().build();
    let g = p.graph.as_mut().unwrap();
    // Relu now reads the Identity's output, which reads the Relu's: a cycle.
    let relu_out = g.node[0].output[0].clone();
    g.node[1].output = vec!["loop".into()];
    g.node[0].input = vec!["loop".into()];
    g.output[0].name = Some(relu_out);
    let e = err_of(Model::from_bytes(&p.encode_to_vec())).to_string();
    assert!(e.contains("cycle"), "{e}");
}

#[test]
fn unsupported_ops_name_op_and_opset() {
    let mut b = relu_model();
    b.node("NoSuchOp", &["x"], &[]);
    let e = err_of(b.into_model());
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(
        e.to_string().contains("unsupported op NoSuchOp (opset 17)"),
        "{e}"
    );
    let e = err_of(relu_model().opset(99).into_model()).to_string();
    assert!(e.contains("opset 99 is newer"), "{e}");
}

#[test]
fn inputs_are_checked_by_name_dtype_and_shape() {
    let s = Session::builder()
        .device(DeviceId::CPU)
        .build(relu_model().into_model().unwrap())
        .unwrap();
    let good = Tensor::from_vec(&[2, 4], vec![1.0f32; 8]).unwrap();
    let cases: Vec<(Vec<(&str, Tensor)>, &str)> = vec![
        (vec![], "input \"x\" is missing"),
        (
            vec![("x", good.clone()), ("z", good.clone())],
            "no input \"z\"",
        ),
        (
            vec![("x", good.clone()), ("x", good.clone())],
            "given twice",
        ),
        (
            vec![("x", good.cast(DType::I64).unwrap())],
            "expects float, got int64",
        ),
        (
            vec![("x", Tensor::from_vec(&[8], vec![1.0f32; 8]).unwrap())],
            "expects rank 2",
        ),
        (
            vec![("x", Tensor::from_vec(&[2, 3], vec![1.0f32; 6]).unwrap())],
            "dimension 1 is 3, not 4",
        ),
    ];
    for (feed, want) in cases {
        let e = err_of(s.run(&feed));
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(
            e.to_string().contains(want),
            "{e:?} should mention {want:?}"
        );
    }
    assert_eq!(s.run(&[("x", good)]).unwrap()[0].shape(), &[2, 4]);
}

#[test]
fn absurd_dimensions_are_refused_before_allocating() {
    let mut b = ModelBuilder::new("huge");
    let shape = b.input("shape", DType::I64, &[Dim::Fixed(3)]);
    let y = b.node(
        "ConstantOfShape",
        &[&shape],
        &[(
            "value",
            Attr::Tensor(Tensor::from_vec(&[1], vec![1.0f32]).unwrap()),
        )],
    );
    b.output(
        &y,
        "y",
        DType::F32,
        &[Dim::Unknown, Dim::Unknown, Dim::Unknown],
    );
    let s = Session::builder()
        .device(DeviceId::CPU)
        .build(b.into_model().unwrap())
        .unwrap();
    let huge = Tensor::from_vec(&[3], vec![1i64 << 20, 1 << 20, 1 << 20]).unwrap();
    let e = err_of(s.run(&[("shape", huge)]));
    assert!(e.to_string().contains("limit"), "{e}");
    let negative = Tensor::from_vec(&[3], vec![2i64, -1, 2]).unwrap();
    assert!(s.run(&[("shape", negative)]).is_err());

    let mut p = relu_model().build();
    let dim = &mut p.graph.as_mut().unwrap().initializer;
    dim.push(crossover::core::proto::tensor_to_proto(
        "w",
        &Tensor::from_vec(&[2], vec![1.0f32, 2.0]).unwrap(),
    ));
    dim[0].dims = vec![-2];
    let e = err_of(Model::from_bytes(&p.encode_to_vec())).to_string();
    assert!(e.contains("negative dimension"), "{e}");
}

#[test]
fn external_data_cannot_escape_the_model_folder() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = relu_model().build();
    let mut w = crossover::core::proto::tensor_to_proto(
        "w",
        &Tensor::from_vec(&[2], vec![1.0f32, 2.0]).unwrap(),
    );
    w.raw_data = None;
    w.data_location = Some(DataLocation::External as i32);
    w.external_data = vec![StringStringEntryProto {
        key: Some("location".into()),
        value: Some("../outside.bin".into()),
    }];
    p.graph.as_mut().unwrap().initializer.push(w);
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, p.encode_to_vec()).unwrap();
    let e = err_of(Model::load(&path)).to_string();
    assert!(e.contains("outside the model's folder"), "{e}");
}

#[test]
fn external_data_inside_the_folder_loads() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = ModelBuilder::new("ext");
    let x = b.input("x", DType::F32, &[Dim::Fixed(2)]);
    let w = b.weight("w", &Tensor::from_vec(&[2], vec![3.0f32, 4.0]).unwrap());
    let y = b.node("Mul", &[&x, &w], &[]);
    b.output(&y, "y", DType::F32, &[Dim::Fixed(2)]);
    let mut p = b.build();
    let init = &mut p.graph.as_mut().unwrap().initializer[0];
    let raw = init.raw_data.take().unwrap();
    std::fs::write(dir.path().join("weights.bin"), [vec![0u8; 8], raw].concat()).unwrap();
    init.data_location = Some(DataLocation::External as i32);
    init.external_data = vec![
        StringStringEntryProto {
            key: Some("location".into()),
            value: Some("weights.bin".into()),
        },
        StringStringEntryProto {
            key: Some("offset".into()),
            value: Some("8".into()),
        },
    ];
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, p.encode_to_vec()).unwrap();
    let s = Session::builder()
        .device(DeviceId::CPU)
        .build_from_file(&path)
        .unwrap();
    let y = s
        .run(&[("x", Tensor::from_vec(&[2], vec![1.0f32, 2.0]).unwrap())])
        .unwrap();
    assert_eq!(
        y[0].view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        vec![3.0, 8.0]
    );
}

#[test]
fn gather_index_out_of_range_is_an_error() {
    let mut b = ModelBuilder::new("gather");
    let table = b.weight(
        "table",
        &Tensor::from_vec(&[3, 2], vec![0.0f32; 6]).unwrap(),
    );
    let idx = b.input("idx", DType::I64, &[Dim::Fixed(2)]);
    let y = b.node("Gather", &[&table, &idx], &[]);
    b.output(&y, "y", DType::F32, &[Dim::Fixed(2), Dim::Fixed(2)]);
    let s = Session::builder()
        .device(DeviceId::CPU)
        .build(b.into_model().unwrap())
        .unwrap();
    let e = err_of(s.run(&[("idx", Tensor::from_vec(&[2], vec![1i64, 7]).unwrap())])).to_string();
    assert!(e.contains('7') && e.contains("Gather"), "{e}");
}

#[test]
fn inconsistent_static_shapes_fail_at_load() {
    let mut b = ModelBuilder::new("mm");
    let x = b.input("x", DType::F32, &[Dim::Param("n".into()), Dim::Fixed(4)]);
    let w = b.weight("w", &Tensor::zeros(DType::F32, &[5, 3]).unwrap());
    let y = b.node("MatMul", &[&x, &w], &[]);
    b.output(
        &y,
        "y",
        DType::F32,
        &[Dim::Param("n".into()), Dim::Fixed(3)],
    );
    let e = err_of(
        Session::builder()
            .device(DeviceId::CPU)
            .build(b.into_model().unwrap()),
    )
    .to_string();
    assert!(e.contains("MatMul") && e.contains("4 and 5"), "{e}");
}
