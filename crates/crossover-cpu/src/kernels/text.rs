//! Text kernels: string concatenation, splitting, normalization, regex matching and
//! n-gram counting.

use std::collections::HashSet;

use crossover_core::op::text::{CaseChange, NgramTrie, TfIdf, TfIdfMode, Vocab};
use crossover_core::TensorData;

use crossover_core::op::TextOp;
use crossover_core::tensor::checked_numel;
use crossover_core::{invalid, DType, Result, Tensor};
use rayon::prelude::*;

use super::broadcast::{binary, unary, PARALLEL_MIN};
use super::Inputs;

pub fn eval(op: &TextOp, x: &Inputs) -> Result<Vec<Tensor>> {
    match op {
        TextOp::StringConcat => {
            let (a, b) = (x.get(0)?.view::<String>()?, x.get(1)?.view::<String>()?);
            let y = binary(a, b, |p: &String, q: &String| {
                let mut s = String::with_capacity(p.len() + q.len());
                s.push_str(p);
                s.push_str(q);
                s
            })?;
            Ok(vec![y.into()])
        }
        TextOp::StringSplit {
            delimiter,
            maxsplit,
        } => string_split(x.get(0)?, delimiter.as_deref(), *maxsplit),
        TextOp::StringNormalizer {
            case_change,
            stopwords,
            case_sensitive,
        } => Ok(vec![normalize(
            x.get(0)?,
            *case_change,
            stopwords,
            *case_sensitive,
        )?]),
        TextOp::RegexFullMatch(re) => {
            let y = unary(x.get(0)?.view::<String>()?, |s: &String| re.is_match(s));
            Ok(vec![y.into()])
        }
        TextOp::TfIdfVectorizer(t) => Ok(vec![tfidf(t, x.get(0)?)?]),
    }
}

/// Appends the pieces of `s` to `out`, as Python's `str.split(delimiter, maxsplit)`
/// does: without a delimiter, runs of whitespace separate and empty pieces are dropped.
fn split_into<'a>(
    s: &'a str,
    delimiter: Option<&str>,
    maxsplit: Option<usize>,
    out: &mut Vec<&'a str>,
) {
    let limit = maxsplit.unwrap_or(usize::MAX);
    match delimiter {
        Some(d) => out.extend(s.splitn(limit.saturating_add(1), d)),
        None => {
            let mut rest = s.trim_start();
            let mut splits = 0;
            while !rest.is_empty() {
                if splits == limit {
                    out.push(rest);
                    break;
                }
                match rest.find(char::is_whitespace) {
                    Some(i) => {
                        out.push(&rest[..i]);
                        rest = rest[i..].trim_start();
                        splits += 1;
                    }
                    None => {
                        out.push(rest);
                        break;
                    }
                }
            }
        }
    }
}

/// Splits every string; the pieces, padded with empty strings to the longest list, get
/// a new last axis.
fn string_split(
    x: &Tensor,
    delimiter: Option<&str>,
    maxsplit: Option<usize>,
) -> Result<Vec<Tensor>> {
    let a = x.view::<String>()?;
    let mut pieces = Vec::new();
    let mut counts = Vec::with_capacity(a.len());
    for s in a.iter() {
        let before = pieces.len();
        split_into(s, delimiter, maxsplit, &mut pieces);
        counts.push(pieces.len() - before);
    }
    let width = counts.iter().copied().max().unwrap_or(0);
    let mut shape = a.shape().to_vec();
    shape.push(width);
    checked_numel(&shape, DType::String)?;
    let mut subs = Vec::with_capacity(a.len() * width);
    let mut rest = pieces.into_iter();
    for &n in &counts {
        subs.extend(rest.by_ref().take(n).map(str::to_string));
        subs.extend(std::iter::repeat_with(String::new).take(width - n));
    }
    let lengths = counts.into_iter().map(|n| n as i64).collect();
    Ok(vec![
        Tensor::from_vec(&shape, subs)?,
        Tensor::from_vec(a.shape(), lengths)?,
    ])
}

fn change_case(s: &str, case: CaseChange) -> String {
    match case {
        CaseChange::None => s.to_string(),
        CaseChange::Lower => s.to_lowercase(),
        CaseChange::Upper => s.to_uppercase(),
    }
}

/// Drops stopwords from a `[C]` or `[1, C]` tensor and changes the case of the rest. An
/// all-dropped input leaves one empty string.
fn normalize(
    x: &Tensor,
    case: CaseChange,
    stopwords: &HashSet<String>,
    case_sensitive: bool,
) -> Result<Tensor> {
    let a = x.view::<String>()?;
    let two_d = match a.shape() {
        [_] => false,
        [1, _] => true,
        s => {
            return Err(invalid!(
                "StringNormalizer needs a [C] or [1, C] input, got shape {s:?}"
            ))
        }
    };
    let mut kept = Vec::with_capacity(a.len());
    for s in a.iter() {
        if stopwords.is_empty() || case_sensitive {
            if !stopwords.contains(s) {
                kept.push(change_case(s, case));
            }
        } else {
            let lower = s.to_lowercase();
            if !stopwords.contains(&lower) {
                kept.push(if case == CaseChange::Lower {
                    lower
                } else {
                    change_case(s, case)
                });
            }
        }
    }
    if kept.is_empty() {
        kept.push(String::new());
    }
    let n = kept.len();
    let shape = if two_d { vec![1, n] } else { vec![n] };
    Tensor::from_vec(&shape, kept)
}

/// The pool's number for each input element, [`NgramTrie::UNKNOWN`] where it has none.
fn tokens(t: &TfIdf, x: &Tensor) -> Result<Vec<u32>> {
    let unknown = NgramTrie::UNKNOWN;
    Ok(match (&**x, &t.trie.vocab) {
        (TensorData::I32(a), Vocab::Int(m)) => a
            .iter()
            .map(|&v| m.get(&i64::from(v)).copied().unwrap_or(unknown))
            .collect(),
        (TensorData::I64(a), Vocab::Int(m)) => a
            .iter()
            .map(|v| m.get(v).copied().unwrap_or(unknown))
            .collect(),
        (TensorData::String(a), Vocab::Str(m)) => a
            .iter()
            .map(|s| m.get(s.as_str()).copied().unwrap_or(unknown))
            .collect(),
        (x, vocab) => {
            let pool = match vocab {
                Vocab::Int(_) => "pool_int64s",
                Vocab::Str(_) => "pool_strings",
            };
            return Err(invalid!(
                "TfIdfVectorizer with {pool} cannot read a {} input",
                x.dtype()
            ));
        }
    })
}

/// Counts the pool's n-grams in one row into `out`, by output coordinate. Items of an
/// n-gram lie `skip` apart, for every skip up to `max_skip_count + 1`; unigrams count
/// once.
fn count_row(t: &TfIdf, row: &[u32], out: &mut [f32]) {
    let (trie, c) = (&t.trie, row.len());
    let mut min_len = t.min_gram_length;
    // A skip of `c` or more fits no n-gram longer than one item.
    let skips = t.max_skip_count.saturating_add(1).min(c.max(1));
    for skip in 1..=skips {
        for start in 0..c {
            if start.saturating_add(skip.saturating_mul(min_len - 1)) >= c {
                break;
            }
            let mut node = NgramTrie::ROOT;
            let mut i = start;
            for len in 1..=t.max_gram_length {
                let Some(next) = row.get(i).and_then(|&tok| trie.child(node, tok)) else {
                    break;
                };
                if len >= min_len {
                    if let Some(v) = trie.output(next).and_then(|o| out.get_mut(o)) {
                        *v += 1.0;
                    }
                }
                node = next;
                i += skip;
            }
        }
        if min_len == 1 {
            min_len = 2;
            if min_len > t.max_gram_length {
                break;
            }
        }
    }
}

fn tfidf(t: &TfIdf, x: &Tensor) -> Result<Tensor> {
    let o = t.output_size;
    let (rows, cols, shape) = match *x.shape() {
        [] => (1, 1, vec![o]),
        [c] => (1, c, vec![o]),
        [n, c] => (n, c, vec![n, o]),
        ref s => {
            return Err(invalid!(
                "TfIdfVectorizer needs a [C] or [N, C] input, got shape {s:?}"
            ))
        }
    };
    let total = checked_numel(&shape, DType::F32)?;
    let tokens = tokens(t, x)?;
    let mut y = vec![0f32; total];
    if o > 0 && cols > 0 && rows > 0 && !t.trie.is_empty() {
        let rows_in = tokens.chunks(cols);
        if tokens.len() >= PARALLEL_MIN {
            y.par_chunks_mut(o)
                .zip(tokens.par_chunks(cols))
                .for_each(|(out, row)| count_row(t, row, out));
        } else {
            y.chunks_mut(o)
                .zip(rows_in)
                .for_each(|(out, row)| count_row(t, row, out));
        }
    }
    let w = t.weights.as_deref();
    match (t.mode, w) {
        (TfIdfMode::Tf, _) | (TfIdfMode::TfIdf, None) => {}
        (TfIdfMode::Idf, None) => y.iter_mut().for_each(|v| *v = f32::from(*v > 0.0)),
        (TfIdfMode::Idf, Some(w)) if o > 0 => y.chunks_mut(o).for_each(|row| {
            row.iter_mut()
                .zip(w)
                .for_each(|(v, &w)| *v = if *v > 0.0 { w } else { 0.0 })
        }),
        (TfIdfMode::TfIdf, Some(w)) if o > 0 => y
            .chunks_mut(o)
            .for_each(|row| row.iter_mut().zip(w).for_each(|(v, &w)| *v *= w)),
        _ => {}
    }
    Tensor::from_vec(&shape, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split<'a>(s: &'a str, d: Option<&str>, m: Option<usize>) -> Vec<&'a str> {
        let mut v = Vec::new();
        split_into(s, d, m, &mut v);
        v
    }

    #[test]
    fn splits_like_python() {
        assert_eq!(split("  a  b c ", None, None), ["a", "b", "c"]);
        assert_eq!(split("  a  b c ", None, Some(1)), ["a", "b c "]);
        assert_eq!(split("   ", None, None), Vec::<&str>::new());
        assert_eq!(split("a--b-", Some("-"), None), ["a", "", "b", ""]);
        assert_eq!(split("a-b-c", Some("-"), Some(1)), ["a", "b-c"]);
        assert_eq!(split("", Some("-"), None), [""]);
    }

    #[test]
    fn split_pads_to_the_longest() {
        let x = Tensor::from_vec(&[2], vec!["a b c".to_string(), "d".to_string()]).unwrap();
        let y = string_split(&x, None, None).unwrap();
        assert_eq!(y[0].shape(), &[2, 3]);
        assert_eq!(y[0].view::<String>().unwrap()[[1, 2]], "");
        assert_eq!(y[1].to_i64_vec().unwrap(), [3, 1]);
    }

    #[test]
    fn normalizer_checks_rank_and_keeps_one_empty_string() {
        let words = |v: &[&str], shape: &[usize]| {
            Tensor::from_vec(shape, v.iter().map(|s| s.to_string()).collect()).unwrap()
        };
        let stops: HashSet<String> = ["monday".to_string()].into();
        let y = normalize(
            &words(&["Monday"], &[1, 1]),
            CaseChange::Upper,
            &stops,
            false,
        )
        .unwrap();
        assert_eq!(y.shape(), &[1, 1]);
        assert_eq!(y.view::<String>().unwrap()[[0, 0]], "");
        let x = words(&["a", "b"], &[2, 1]);
        assert!(normalize(&x, CaseChange::None, &stops, true).is_err());
    }

    #[test]
    fn string_ops_reject_other_dtypes() {
        let x = Tensor::from_vec(&[2], vec![1i64, 2]).unwrap();
        assert!(string_split(&x, None, None).is_err());
        assert!(normalize(&x, CaseChange::None, &HashSet::new(), true).is_err());
    }

    #[test]
    fn tfidf_counts_skip_grams_and_checks_inputs() {
        use crossover_core::op::text::Pool;
        // Unigrams 2, 3; bigrams (5, 6), (2, 3).
        let t = TfIdf::new(
            TfIdfMode::TfIdf,
            [1, 2, 1],
            &[0, 2],
            &[0, 1, 2, 3],
            &Pool::Int(vec![2, 3, 5, 6, 2, 3]),
            Some(vec![1.0, 1.0, 0.5, 2.0]),
        )
        .unwrap();
        let x = Tensor::from_vec(&[2, 4], vec![2i32, 3, 5, 6, 5, 2, 6, 3]).unwrap();
        let y = tfidf(&t, &x).unwrap();
        assert_eq!(y.shape(), &[2, 4]);
        // Row 2: (5, 6) with one item skipped, (2, 3) with one skipped.
        assert_eq!(
            y.to_f64_vec().unwrap(),
            [1.0, 1.0, 0.5, 2.0, 1.0, 1.0, 0.5, 2.0]
        );
        let s = Tensor::from_vec(&[1], vec!["2".to_string()]).unwrap();
        assert!(tfidf(&t, &s).is_err());
        let r3 = Tensor::from_vec(&[1, 1, 1], vec![2i64]).unwrap();
        assert!(tfidf(&t, &r3).is_err());
        let bad = TfIdf::new(
            TfIdfMode::Tf,
            [1, 2, 0],
            &[0, 2],
            &[0, 1, -1],
            &Pool::Int(vec![2, 3, 5, 6]),
            None,
        );
        assert!(bad.is_err());
    }
}
