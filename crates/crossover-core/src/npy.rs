//! Reading and writing numpy `.npy` files (format versions 1 to 3, little-endian).

use std::path::Path;

use crate::proto::{from_raw, to_raw};
use crate::tensor::checked_numel;
use crate::{invalid, DType, Error, Result, Tensor};

const MAGIC: &[u8] = b"\x93NUMPY";

/// Decodes `.npy` bytes.
pub fn decode(bytes: &[u8]) -> Result<Tensor> {
    let bad = |m: &str| invalid!("not a valid .npy file: {m}");
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad("missing the \\x93NUMPY magic"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(&format!("unknown format version {v}"))),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or_else(|| bad("truncated header"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("header is not text"))?;
    let descr = dict_value(header, "descr").ok_or_else(|| bad("no 'descr' in header"))?;
    let fortran =
        dict_value(header, "fortran_order").ok_or_else(|| bad("no 'fortran_order' in header"))?;
    let shape = dict_value(header, "shape").ok_or_else(|| bad("no 'shape' in header"))?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let dtype = numpy_dtype(descr)?;
    let shape: Vec<usize> = shape
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|d| d.parse().map_err(|_| bad(&format!("bad dimension {d:?}"))))
        .collect::<Result<_>>()?;
    checked_numel(&shape, dtype)?;
    let data = &bytes[start + header_len..];
    if fortran.trim() == "True" {
        let reversed: Vec<usize> = shape.iter().rev().copied().collect();
        let t = from_raw(dtype, &reversed, data)?;
        let perm: Vec<usize> = (0..shape.len()).rev().collect();
        return Ok(
            crate::map_array!(&t, a => a.clone().permuted_axes(perm.clone())).to_standard_layout(),
        );
    }
    from_raw(dtype, &shape, data)
}

/// Encodes a tensor as `.npy` bytes (format version 1, C order).
pub fn encode(t: &Tensor) -> Result<Vec<u8>> {
    let descr = match t.dtype() {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::F16 => "<f2",
        DType::I8 => "|i1",
        DType::I16 => "<i2",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::U8 => "|u1",
        DType::U16 => "<u2",
        DType::U32 => "<u4",
        DType::U64 => "<u8",
        DType::Bool => "|b1",
        dt => {
            return Err(Error::Unsupported(format!(
                ".npy files of {dt} (numpy has no such dtype)"
            )))
        }
    };
    let dims: Vec<String> = t.shape().iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad so the data starts on a 64-byte boundary, ending the header with a newline.
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + t.nbytes());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&to_raw(&t.to_standard_layout()));
    Ok(out)
}

pub fn read(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode(&bytes).map_err(|e| invalid!("{}: {e}", path.display()))
}

pub fn write(path: &Path, t: &Tensor) -> Result<()> {
    std::fs::write(path, encode(t)?).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn numpy_dtype(descr: &str) -> Result<DType> {
    let unsupported = || Error::Unsupported(format!(".npy dtype {descr:?}"));
    let (order, code) = descr.split_at(1.min(descr.len()));
    if order == ">" && !matches!(code, "i1" | "u1" | "b1") {
        return Err(Error::Unsupported(format!(
            "big-endian .npy data ({descr:?})"
        )));
    }
    Ok(match code {
        "f4" => DType::F32,
        "f8" => DType::F64,
        "f2" => DType::F16,
        "i1" => DType::I8,
        "i2" => DType::I16,
        "i4" => DType::I32,
        "i8" => DType::I64,
        "u1" => DType::U8,
        "u2" => DType::U16,
        "u4" => DType::U32,
        "u8" => DType::U64,
        "b1" => DType::Bool,
        _ => return Err(unsupported()),
    })
}

/// The raw text of `key`'s value in numpy's header dict.
fn dict_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = header[at + key.len() + 2..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}'])?
    };
    Some(rest[..end].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for t in [
            Tensor::from_vec(&[2, 3], vec![1.5f32, -2.0, 0.0, 4.0, 5.0, 6.0]).unwrap(),
            Tensor::from_vec(&[3], vec![true, false, true]).unwrap(),
            Tensor::scalar(7i64),
        ] {
            let back = decode(&encode(&t).unwrap()).unwrap();
            assert_eq!(format!("{t:?}"), format!("{back:?}"));
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode(b"not numpy at all").is_err());
        let mut b = encode(&Tensor::from_vec(&[4], vec![1.0f32; 4]).unwrap()).unwrap();
        b.truncate(b.len() - 3);
        assert!(decode(&b).unwrap_err().to_string().contains("bytes"));
    }
}
