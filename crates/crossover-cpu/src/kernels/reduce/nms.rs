//! NonMaxSuppression.

use crossover_core::{invalid, DType, Result, Tensor};

/// A box as (x_min, y_min, x_max, y_max).
fn corners(b: &[f32], center_point_box: bool) -> [f32; 4] {
    if center_point_box {
        let (hw, hh) = (b[2] / 2.0, b[3] / 2.0);
        [b[0] - hw, b[1] - hh, b[0] + hw, b[1] + hh]
    } else {
        [
            b[1].min(b[3]),
            b[0].min(b[2]),
            b[1].max(b[3]),
            b[0].max(b[2]),
        ]
    }
}

fn iou_exceeds(a: &[f32; 4], b: &[f32; 4], threshold: f32) -> bool {
    let (x0, x1) = (a[0].max(b[0]), a[2].min(b[2]));
    let (y0, y1) = (a[1].max(b[1]), a[3].min(b[3]));
    if x1 <= x0 || y1 <= y0 {
        return false;
    }
    let inter = (x1 - x0) * (y1 - y0);
    let area_a = (a[2] - a[0]) * (a[3] - a[1]);
    let area_b = (b[2] - b[0]) * (b[3] - b[1]);
    let union = area_a + area_b - inter;
    if inter <= 0.0 || area_a <= 0.0 || area_b <= 0.0 || union <= 0.0 {
        return false;
    }
    inter / union > threshold
}

fn first_f32(t: Option<&Tensor>) -> Result<Option<f32>> {
    match t {
        Some(t) if !t.is_empty() => Ok(Some(t.to_f64_vec()?[0] as f32)),
        _ => Ok(None),
    }
}

/// Greedy per-class suppression; output `[selected, 3]` rows of (batch, class, box).
pub fn non_max_suppression(
    boxes: &Tensor,
    scores: &Tensor,
    max_out: Option<&Tensor>,
    iou: Option<&Tensor>,
    score_threshold: Option<&Tensor>,
    center_point_box: bool,
) -> Result<Tensor> {
    let (&[nb, n, 4], &[sb, classes, sn]) = (boxes.shape(), scores.shape()) else {
        return Err(invalid!(
            "NonMaxSuppression needs boxes [batch, boxes, 4] and scores [batch, classes, boxes], got {:?} and {:?}",
            boxes.shape(),
            scores.shape()
        ));
    };
    if nb != sb || n != sn {
        return Err(invalid!(
            "NonMaxSuppression: boxes {:?} and scores {:?} disagree",
            boxes.shape(),
            scores.shape()
        ));
    }
    let max_out = match max_out {
        Some(t) if !t.is_empty() => t.to_i64_vec()?[0].max(0) as usize,
        _ => 0,
    };
    let iou = first_f32(iou)?.unwrap_or(0.0);
    let score_threshold = first_f32(score_threshold)?;
    let bx = boxes.cast(DType::F32)?.to_standard_layout();
    let sc = scores.cast(DType::F32)?.to_standard_layout();
    let bx = bx.view::<f32>()?;
    let sc = sc.view::<f32>()?;
    let (bx, sc) = (
        bx.as_slice().expect("standard layout"),
        sc.as_slice().expect("standard layout"),
    );
    let mut out: Vec<i64> = Vec::new();
    let mut cand: Vec<(f32, usize)> = Vec::with_capacity(n);
    let mut kept: Vec<[f32; 4]> = Vec::new();
    for b in 0..nb {
        let rects: Vec<[f32; 4]> = (0..n)
            .map(|i| corners(&bx[(b * n + i) * 4..(b * n + i + 1) * 4], center_point_box))
            .collect();
        for c in 0..classes {
            let s = &sc[(b * classes + c) * n..(b * classes + c + 1) * n];
            cand.clear();
            cand.extend(
                s.iter()
                    .enumerate()
                    .filter(|(_, &v)| score_threshold.is_none_or(|t| v > t))
                    .map(|(i, &v)| (v, i)),
            );
            // Highest score first, lower index first among equals.
            cand.sort_by(|p, q| q.0.total_cmp(&p.0).then(p.1.cmp(&q.1)));
            kept.clear();
            for &(_, i) in &cand {
                if kept.len() >= max_out {
                    break;
                }
                if kept.iter().all(|k| !iou_exceeds(&rects[i], k, iou)) {
                    kept.push(rects[i]);
                    out.extend([b as i64, c as i64, i as i64]);
                }
            }
        }
    }
    Tensor::from_vec(&[out.len() / 3, 3], out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppresses_overlaps_and_checks_shapes() {
        let boxes = Tensor::from_vec(
            &[1, 3, 4],
            vec![0f32, 0., 1., 1., 0., 0.1, 1., 1.1, 0., 10., 1., 11.],
        )
        .unwrap();
        let scores = Tensor::from_vec(&[1, 1, 3], vec![0.9f32, 0.95, 0.3]).unwrap();
        let m = Tensor::from_vec(&[1], vec![3i64]).unwrap();
        let iou = Tensor::from_vec(&[1], vec![0.5f32]).unwrap();
        let r = non_max_suppression(&boxes, &scores, Some(&m), Some(&iou), None, false).unwrap();
        assert_eq!(r.to_i64_vec().unwrap(), vec![0, 0, 1, 0, 0, 2]);
        assert!(non_max_suppression(&scores, &boxes, None, None, None, false).is_err());
    }
}
