//! Signal processing: DFT, STFT, window functions and MelWeightMatrix.

use super::NodeCtx;
use crate::{DType, Result};

#[derive(Clone, Debug, PartialEq, strum::IntoStaticStr)]
pub enum SignalOp {
    /// `axis` is the attribute of opsets 17–19; from opset 20 it is input 2.
    DFT {
        axis: Option<i64>,
        inverse: bool,
        onesided: bool,
    },
    STFT {
        onesided: bool,
    },
    HannWindow {
        periodic: bool,
        output_datatype: DType,
    },
    HammingWindow {
        periodic: bool,
        output_datatype: DType,
    },
    BlackmanWindow {
        periodic: bool,
        output_datatype: DType,
    },
    MelWeightMatrix {
        output_datatype: DType,
    },
}

impl SignalOp {
    pub(crate) fn parse(cx: &NodeCtx) -> Option<Result<Self>> {
        let op = cx.op_type();
        Some(match op {
            "DFT" => (|| {
                Ok(Self::DFT {
                    axis: if cx.opset < 20 {
                        Some(cx.int_or("axis", 1)?)
                    } else {
                        None
                    },
                    inverse: cx.int_or("inverse", 0)? != 0,
                    onesided: cx.int_or("onesided", 0)? != 0,
                })
            })(),
            "STFT" => (|| {
                Ok(Self::STFT {
                    onesided: cx.int_or("onesided", 1)? != 0,
                })
            })(),
            "HannWindow" | "HammingWindow" | "BlackmanWindow" => (|| {
                let periodic = cx.int_or("periodic", 1)? != 0;
                let output_datatype = cx.dtype("output_datatype")?.unwrap_or(DType::F32);
                Ok(match op {
                    "HannWindow" => Self::HannWindow {
                        periodic,
                        output_datatype,
                    },
                    "HammingWindow" => Self::HammingWindow {
                        periodic,
                        output_datatype,
                    },
                    _ => Self::BlackmanWindow {
                        periodic,
                        output_datatype,
                    },
                })
            })(),
            "MelWeightMatrix" => (|| {
                Ok(Self::MelWeightMatrix {
                    output_datatype: cx.dtype("output_datatype")?.unwrap_or(DType::F32),
                })
            })(),
            _ => return None,
        })
    }
}
