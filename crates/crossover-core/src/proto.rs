//! `TensorProto` <-> [`Tensor`], external data included.

use std::path::{Path, PathBuf};

use half::{bf16, f16};

use crate::onnx::{tensor_proto::DataLocation, TensorProto};
use crate::tensor::checked_numel;
use crate::{invalid_model, with_array, DType, Error, Result, Tensor, TensorData};

/// Where a model's tensors come from: the bytes themselves, plus the model's folder for
/// external data. External files must stay inside that folder.
#[derive(Clone, Debug, Default)]
pub struct TensorSource {
    pub(crate) dir: Option<PathBuf>,
}

impl TensorSource {
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        TensorSource {
            dir: Some(dir.into()),
        }
    }

    /// Decodes a tensor, reading external data from disk where the proto points to it.
    pub fn tensor(&self, p: &TensorProto) -> Result<Tensor> {
        let name = p.name.clone().unwrap_or_default();
        self.decode(p).map_err(|e| match e {
            Error::InvalidModel(m) if !name.is_empty() => invalid_model!("tensor {name:?}: {m}"),
            e => e,
        })
    }

    fn decode(&self, p: &TensorProto) -> Result<Tensor> {
        let code = p.data_type.unwrap_or(0);
        if code == 0 {
            return Err(invalid_model!("data type is undefined"));
        }
        let dtype = DType::from_onnx_code(code)?;
        let shape = crate::tensor::dims_to_shape(&p.dims, "tensor dims")
            .map_err(|e| invalid_model!("{e}"))?;
        let n = checked_numel(&shape, dtype)?;
        if p.segment.is_some() {
            return Err(Error::Unsupported("segmented tensors".into()));
        }
        if p.data_location == Some(DataLocation::External as i32) {
            let raw = self.external(p, n * dtype.size())?;
            return from_raw(dtype, &shape, &raw);
        }
        if let Some(raw) = &p.raw_data {
            if dtype == DType::String {
                return Err(invalid_model!("string tensors cannot use raw_data"));
            }
            return from_raw(dtype, &shape, raw);
        }
        let count = |len: usize| {
            if len == n {
                Ok(())
            } else {
                Err(invalid_model!(
                    "holds {len} values but its shape {shape:?} needs {n}"
                ))
            }
        };
        match dtype {
            DType::F32 => {
                count(p.float_data.len())?;
                Tensor::from_vec(&shape, p.float_data.clone())
            }
            DType::F64 => {
                count(p.double_data.len())?;
                Tensor::from_vec(&shape, p.double_data.clone())
            }
            DType::I64 => {
                count(p.int64_data.len())?;
                Tensor::from_vec(&shape, p.int64_data.clone())
            }
            DType::U64 => {
                count(p.uint64_data.len())?;
                Tensor::from_vec(&shape, p.uint64_data.clone())
            }
            DType::U32 => {
                count(p.uint64_data.len())?;
                Tensor::from_vec(&shape, p.uint64_data.iter().map(|&v| v as u32).collect())
            }
            DType::String => {
                count(p.string_data.len())?;
                let v = p
                    .string_data
                    .iter()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect();
                Tensor::from_vec(&shape, v)
            }
            _ => {
                count(p.int32_data.len())?;
                let d = &p.int32_data;
                match dtype {
                    DType::I32 => Tensor::from_vec(&shape, d.clone()),
                    DType::I16 => Tensor::from_vec(&shape, d.iter().map(|&v| v as i16).collect()),
                    DType::I8 => Tensor::from_vec(&shape, d.iter().map(|&v| v as i8).collect()),
                    DType::U16 => Tensor::from_vec(&shape, d.iter().map(|&v| v as u16).collect()),
                    DType::U8 => Tensor::from_vec(&shape, d.iter().map(|&v| v as u8).collect()),
                    DType::Bool => Tensor::from_vec(&shape, d.iter().map(|&v| v != 0).collect()),
                    DType::F16 => Tensor::from_vec(
                        &shape,
                        d.iter().map(|&v| f16::from_bits(v as u16)).collect(),
                    ),
                    DType::BF16 => Tensor::from_vec(
                        &shape,
                        d.iter().map(|&v| bf16::from_bits(v as u16)).collect(),
                    ),
                    _ => unreachable!("every other dtype is matched above"),
                }
            }
        }
    }

    fn external(&self, p: &TensorProto, nbytes: usize) -> Result<Vec<u8>> {
        let mut location = None;
        let mut offset = 0u64;
        let mut length = None;
        for kv in &p.external_data {
            let v = kv.value.clone().unwrap_or_default();
            let num = || {
                v.parse::<u64>()
                    .map_err(|_| invalid_model!("external data {v:?} is not a number"))
            };
            match kv.key.as_deref() {
                Some("location") => location = Some(v.clone()),
                Some("offset") => offset = num()?,
                Some("length") => length = Some(num()?),
                _ => {}
            }
        }
        let location =
            location.ok_or_else(|| invalid_model!("external data without a location"))?;
        let dir = self.dir.as_ref().ok_or_else(|| {
            invalid_model!(
                "uses external data {location:?}, which needs the model to be loaded from a file"
            )
        })?;
        let path = resolve_inside(dir, &location)?;
        let len = length.unwrap_or(nbytes as u64);
        if len != nbytes as u64 {
            return Err(invalid_model!(
                "external data {location:?} has length {len}, expected {nbytes} bytes"
            ));
        }
        use std::io::{Read, Seek, SeekFrom};
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let mut f = std::fs::File::open(&path).map_err(io)?;
        let size = f.metadata().map_err(io)?.len();
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(invalid_model!(
                "external data {location:?}: bytes {offset}..{} lie past the file's end ({size} bytes)",
                offset.saturating_add(len)
            ));
        }
        f.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut buf = vec![0u8; nbytes];
        f.read_exact(&mut buf).map_err(io)?;
        Ok(buf)
    }
}

/// Joins `location` to `dir`, refusing anything that lands outside `dir`.
fn resolve_inside(dir: &Path, location: &str) -> Result<PathBuf> {
    let escape =
        || invalid_model!("external data location {location:?} lies outside the model's folder");
    let rel = Path::new(location);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(escape());
    }
    let base = dir.canonicalize().map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let full = base.join(rel);
    let real = full.canonicalize().map_err(|source| Error::Io {
        path: full.clone(),
        source,
    })?;
    // A symlink inside the folder may still point out of it.
    if !real.starts_with(&base) {
        return Err(escape());
    }
    Ok(real)
}

/// Decodes little-endian element bytes (TensorProto raw_data, .npy payloads).
pub(crate) fn from_raw(dtype: DType, shape: &[usize], raw: &[u8]) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    if raw.len() != n * dtype.size() {
        return Err(invalid_model!(
            "raw data has {} bytes but shape {shape:?} of {dtype} needs {}",
            raw.len(),
            n * dtype.size()
        ));
    }
    macro_rules! le {
        ($t:ty) => {{
            const W: usize = std::mem::size_of::<$t>();
            let v: Vec<$t> = raw
                .chunks_exact(W)
                .map(|c| <$t>::from_le_bytes(c.try_into().unwrap()))
                .collect();
            Tensor::from_vec(shape, v)
        }};
    }
    match dtype {
        DType::F32 => le!(f32),
        DType::F64 => le!(f64),
        DType::I8 => le!(i8),
        DType::I16 => le!(i16),
        DType::I32 => le!(i32),
        DType::I64 => le!(i64),
        DType::U8 => le!(u8),
        DType::U16 => le!(u16),
        DType::U32 => le!(u32),
        DType::U64 => le!(u64),
        DType::F16 => Tensor::from_vec(
            shape,
            raw.chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]))
                .collect(),
        ),
        DType::BF16 => Tensor::from_vec(
            shape,
            raw.chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]))
                .collect(),
        ),
        DType::Bool => Tensor::from_vec(shape, raw.iter().map(|&b| b != 0).collect()),
        DType::String => unreachable!("strings have no raw form"),
    }
}

/// Encodes a tensor as a `TensorProto` (raw little-endian data; strings in `string_data`).
pub fn tensor_to_proto(name: &str, t: &Tensor) -> TensorProto {
    let mut p = TensorProto {
        name: Some(name.to_string()),
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: Some(t.dtype().onnx_code()),
        ..Default::default()
    };
    if let TensorData::String(a) = &**t {
        p.string_data = a.iter().map(|s| s.as_bytes().to_vec()).collect();
        return p;
    }
    p.raw_data = Some(to_raw(t));
    p
}

/// Little-endian element bytes of a non-string tensor.
pub(crate) fn to_raw(t: &Tensor) -> Vec<u8> {
    let mut raw = Vec::with_capacity(t.nbytes());
    with_array!(t, a => for v in a.iter() { push_le(&mut raw, v) });
    raw
}

fn push_le<T: ToLe>(out: &mut Vec<u8>, v: &T) {
    v.extend_le(out)
}

trait ToLe {
    fn extend_le(&self, out: &mut Vec<u8>);
}

macro_rules! to_le {
    ($($t:ty),*) => {$(impl ToLe for $t { fn extend_le(&self, out: &mut Vec<u8>) { out.extend_from_slice(&self.to_le_bytes()) } })*};
}
to_le!(f32, f64, i8, i16, i32, i64, u8, u16, u32, u64, f16, bf16);
impl ToLe for bool {
    fn extend_le(&self, out: &mut Vec<u8>) {
        out.push(*self as u8)
    }
}
impl ToLe for String {
    fn extend_le(&self, _: &mut Vec<u8>) {
        unreachable!("strings are encoded in string_data")
    }
}

/// Reads a serialized `TensorProto` file (the ONNX test-data format).
pub fn read_tensor_pb(path: &Path) -> Result<Tensor> {
    use prost::Message;
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let p = TensorProto::decode(bytes.as_slice())
        .map_err(|e| Error::Decode(format!("{}: {e}", path.display())))?;
    let dir = path.parent().map(Path::to_path_buf);
    TensorSource { dir }.tensor(&p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_dtype() {
        for dt in DType::ALL {
            let t = Tensor::from_vec(&[3], vec![0i64, 1, 2])
                .unwrap()
                .cast(dt)
                .unwrap();
            let back = TensorSource::default()
                .tensor(&tensor_to_proto("x", &t))
                .unwrap();
            assert_eq!(format!("{t:?}"), format!("{back:?}"), "{dt}");
        }
    }

    #[test]
    fn refuses_escaping_external_paths() {
        let dir = std::env::temp_dir();
        for loc in ["../secret.bin", "/etc/passwd", "a/../../b"] {
            let err = resolve_inside(&dir, loc).unwrap_err().to_string();
            assert!(err.contains("outside the model's folder"), "{loc}: {err}");
        }
    }

    #[test]
    fn wrong_value_counts_are_errors() {
        let p = TensorProto {
            dims: vec![2, 2],
            data_type: Some(1),
            float_data: vec![1.0],
            ..Default::default()
        };
        let err = TensorSource::default().tensor(&p).unwrap_err().to_string();
        assert!(err.contains("holds 1 values"), "{err}");
    }
}
