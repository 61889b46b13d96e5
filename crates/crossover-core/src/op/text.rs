//! Text ops: StringConcat, StringSplit, StringNormalizer, RegexFullMatch and
//! TfIdfVectorizer. Regexes compile and n-gram pools load once, at import.

use std::collections::{HashMap, HashSet};

use super::NodeCtx;
use crate::{invalid_model, Result};

#[derive(Clone, Debug, PartialEq, strum::IntoStaticStr)]
pub enum TextOp {
    StringConcat,
    StringSplit {
        /// `None` splits on runs of whitespace, dropping empty pieces (an empty or
        /// absent `delimiter`).
        delimiter: Option<String>,
        /// At most this many splits; the rest of the string is the last piece.
        maxsplit: Option<usize>,
    },
    StringNormalizer {
        case_change: CaseChange,
        /// Stopwords, lowercased when matching ignores case.
        stopwords: HashSet<String>,
        case_sensitive: bool,
    },
    RegexFullMatch(FullMatch),
    TfIdfVectorizer(TfIdf),
}

/// StringNormalizer's `case_change_action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaseChange {
    None,
    Lower,
    Upper,
}

/// A compiled regex that must match a whole string.
#[derive(Clone, Debug)]
pub struct FullMatch {
    pattern: String,
    regex: regex::Regex,
}

impl FullMatch {
    pub fn new(pattern: &str) -> Result<Self> {
        let regex = regex::Regex::new(&format!(r"\A(?:{pattern})\z"))
            .map_err(|e| invalid_model!("invalid regex pattern {pattern:?}: {e}"))?;
        Ok(Self {
            pattern: pattern.to_string(),
            regex,
        })
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Whether the pattern matches all of `s`.
    pub fn is_match(&self, s: &str) -> bool {
        self.regex.is_match(s)
    }
}

impl PartialEq for FullMatch {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

/// How TfIdfVectorizer weighs the n-gram counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TfIdfMode {
    /// Raw counts.
    Tf,
    /// The weight (or 1) where an n-gram occurs.
    Idf,
    /// Counts times weights.
    TfIdf,
}

/// TfIdfVectorizer with its pool loaded into an n-gram trie.
#[derive(Clone, Debug, PartialEq)]
pub struct TfIdf {
    pub mode: TfIdfMode,
    pub min_gram_length: usize,
    pub max_gram_length: usize,
    pub max_skip_count: usize,
    /// Output row length: the largest `ngram_indexes` entry plus one.
    pub output_size: usize,
    /// Weights by output coordinate (at least `output_size` of them), if given.
    pub weights: Option<Vec<f32>>,
    pub trie: NgramTrie,
}

/// The pool's tokens, numbered.
#[derive(Clone, Debug, PartialEq)]
pub enum Vocab {
    Int(HashMap<i64, u32>),
    Str(HashMap<String, u32>),
}

/// The pool's n-grams (of the lengths counted) as a trie over token numbers. Node 0 is
/// the root; a node is the n-gram spelled by the path to it.
#[derive(Clone, Debug, PartialEq)]
pub struct NgramTrie {
    pub vocab: Vocab,
    /// `(parent << 32) | token` to child node.
    edges: HashMap<u64, u32>,
    /// Output coordinate of each node's n-gram, when the pool lists it.
    outputs: Vec<Option<u32>>,
}

impl NgramTrie {
    /// Token number that stands for a value the pool does not hold.
    pub const UNKNOWN: u32 = u32::MAX;

    pub const ROOT: u32 = 0;

    pub fn child(&self, node: u32, token: u32) -> Option<u32> {
        if token == Self::UNKNOWN {
            return None;
        }
        self.edges
            .get(&((u64::from(node) << 32) | u64::from(token)))
            .copied()
    }

    /// The output coordinate of the n-gram ending at `node`.
    pub fn output(&self, node: u32) -> Option<usize> {
        self.outputs
            .get(node as usize)
            .copied()
            .flatten()
            .map(|o| o as usize)
    }

    /// Whether no n-gram can ever match.
    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }
}

/// TfIdfVectorizer's pool: `pool_int64s` or `pool_strings`.
#[derive(Clone, Debug, PartialEq)]
pub enum Pool {
    Int(Vec<i64>),
    Str(Vec<String>),
}

impl Pool {
    fn len(&self) -> usize {
        match self {
            Pool::Int(v) => v.len(),
            Pool::Str(v) => v.len(),
        }
    }
}

impl TfIdf {
    fn parse(cx: &NodeCtx) -> Result<Self> {
        let mode = match cx.required("mode", cx.string("mode"))?.as_str() {
            "TF" => TfIdfMode::Tf,
            "IDF" => TfIdfMode::Idf,
            "TFIDF" => TfIdfMode::TfIdf,
            other => return Err(invalid_model!("unknown TfIdfVectorizer mode {other:?}")),
        };
        let pool = match (cx.ints("pool_int64s")?, cx.strings("pool_strings")?) {
            (Some(p), None) => Pool::Int(p),
            (None, Some(p)) => Pool::Str(p),
            _ => {
                return Err(invalid_model!(
                    "TfIdfVectorizer needs exactly one of pool_int64s and pool_strings"
                ))
            }
        };
        Self::new(
            mode,
            [
                cx.required("min_gram_length", cx.int("min_gram_length"))?,
                cx.required("max_gram_length", cx.int("max_gram_length"))?,
                cx.required("max_skip_count", cx.int("max_skip_count"))?,
            ],
            &cx.required("ngram_counts", cx.ints("ngram_counts"))?,
            &cx.required("ngram_indexes", cx.ints("ngram_indexes"))?,
            &pool,
            cx.floats("weights")?,
        )
    }

    /// Checks the attributes and loads the pool. `lengths` holds `min_gram_length`,
    /// `max_gram_length` and `max_skip_count`.
    pub fn new(
        mode: TfIdfMode,
        lengths: [i64; 3],
        ngram_counts: &[i64],
        ngram_indexes: &[i64],
        pool: &Pool,
        weights: Option<Vec<f32>>,
    ) -> Result<Self> {
        let [min_gram_length, max_gram_length, max_skip_count] = lengths.map(|v| {
            usize::try_from(v)
                .map_err(|_| invalid_model!("TfIdfVectorizer lengths {lengths:?} are negative"))
        });
        let (min_gram_length, max_gram_length) = (min_gram_length?, max_gram_length?);
        if min_gram_length == 0 || min_gram_length > max_gram_length {
            return Err(invalid_model!(
                "TfIdfVectorizer needs 1 <= min_gram_length <= max_gram_length, got \
                 {min_gram_length} and {max_gram_length}"
            ));
        }
        let indexes = ngram_indexes
            .iter()
            .map(|&i| {
                u32::try_from(i)
                    .map_err(|_| invalid_model!("TfIdfVectorizer ngram_indexes entry {i}"))
            })
            .collect::<Result<Vec<u32>>>()?;
        let output_size = indexes.iter().max().map_or(0, |&m| m as usize + 1);
        let weights = weights.filter(|w| !w.is_empty());
        if let Some(w) = &weights {
            if w.len() < output_size {
                return Err(invalid_model!(
                    "TfIdfVectorizer has {} weights for {output_size} outputs",
                    w.len()
                ));
            }
        }
        let trie = load(
            pool,
            ngram_counts,
            &indexes,
            min_gram_length..=max_gram_length,
        )?;
        Ok(Self {
            mode,
            min_gram_length,
            max_gram_length,
            max_skip_count: max_skip_count?,
            output_size,
            weights,
            trie,
        })
    }
}

/// Loads the pool's n-grams with lengths in `lengths` into a trie. `ngram_counts[i]` is
/// where the n-grams of length `i + 1` start in the pool; `indexes` gives each n-gram
/// of the pool (of every length) its output coordinate.
fn load(
    pool: &Pool,
    counts: &[i64],
    indexes: &[u32],
    lengths: std::ops::RangeInclusive<usize>,
) -> Result<NgramTrie> {
    let total = pool.len();
    let mut trie = NgramTrie {
        vocab: match pool {
            Pool::Int(_) => Vocab::Int(HashMap::new()),
            Pool::Str(_) => Vocab::Str(HashMap::new()),
        },
        edges: HashMap::new(),
        outputs: vec![None],
    };
    let mut ngram = 0usize;
    for (i, &start) in counts.iter().enumerate() {
        let end = counts.get(i + 1).copied().unwrap_or(total as i64);
        if start < 0 || start > end || end > total as i64 {
            return Err(invalid_model!(
                "TfIdfVectorizer ngram_counts {counts:?} do not fit a pool of {total}"
            ));
        }
        let (start, end, len) = (start as usize, end as usize, i + 1);
        if (end - start) % len != 0 {
            return Err(invalid_model!(
                "TfIdfVectorizer pool section {start}..{end} does not hold whole {len}-grams"
            ));
        }
        let n = (end - start) / len;
        if ngram + n > indexes.len() {
            return Err(invalid_model!(
                "TfIdfVectorizer pool holds more n-grams than the {} ngram_indexes",
                indexes.len()
            ));
        }
        if lengths.contains(&len) {
            for (k, gram) in (start..end).step_by(len).enumerate() {
                let mut node = NgramTrie::ROOT;
                for p in gram..gram + len {
                    let token = trie.token(pool, p)?;
                    node = trie.insert(node, token)?;
                }
                trie.outputs[node as usize] = Some(indexes[ngram + k]);
            }
        }
        ngram += n;
    }
    if ngram != indexes.len() {
        return Err(invalid_model!(
            "TfIdfVectorizer pool holds {ngram} n-grams but ngram_indexes has {}",
            indexes.len()
        ));
    }
    Ok(trie)
}

impl NgramTrie {
    /// The number of pool entry `p`, numbering it if new.
    fn token(&mut self, pool: &Pool, p: usize) -> Result<u32> {
        let next = |len: usize| {
            u32::try_from(len)
                .ok()
                .filter(|&t| t != Self::UNKNOWN)
                .ok_or_else(|| invalid_model!("TfIdfVectorizer pool is too large"))
        };
        Ok(match (&mut self.vocab, pool) {
            (Vocab::Int(m), Pool::Int(v)) => {
                let t = next(m.len())?;
                *m.entry(v[p]).or_insert(t)
            }
            (Vocab::Str(m), Pool::Str(v)) => match m.get(&v[p]) {
                Some(&t) => t,
                None => {
                    let t = next(m.len())?;
                    m.insert(v[p].clone(), t);
                    t
                }
            },
            _ => unreachable!("the vocabulary is made for the pool"),
        })
    }

    fn insert(&mut self, node: u32, token: u32) -> Result<u32> {
        let key = (u64::from(node) << 32) | u64::from(token);
        if let Some(&c) = self.edges.get(&key) {
            return Ok(c);
        }
        let c = u32::try_from(self.outputs.len())
            .map_err(|_| invalid_model!("TfIdfVectorizer pool is too large"))?;
        self.outputs.push(None);
        self.edges.insert(key, c);
        Ok(c)
    }
}

impl TextOp {
    pub(crate) fn parse(cx: &NodeCtx) -> Option<Result<Self>> {
        Some(match cx.op_type() {
            "StringConcat" => Ok(Self::StringConcat),
            "StringSplit" => (|| {
                let maxsplit = cx
                    .int("maxsplit")?
                    .map(|m| {
                        usize::try_from(m)
                            .map_err(|_| invalid_model!("StringSplit maxsplit is negative: {m}"))
                    })
                    .transpose()?;
                Ok(Self::StringSplit {
                    delimiter: cx.string("delimiter")?.filter(|d| !d.is_empty()),
                    maxsplit,
                })
            })(),
            "StringNormalizer" => (|| {
                let case_change = match cx.string_or("case_change_action", "NONE")?.as_str() {
                    "NONE" => CaseChange::None,
                    "LOWER" => CaseChange::Lower,
                    "UPPER" => CaseChange::Upper,
                    other => {
                        return Err(invalid_model!(
                            "unknown StringNormalizer case_change_action {other:?}"
                        ))
                    }
                };
                let case_sensitive = cx.int_or("is_case_sensitive", 0)? != 0;
                // Case mappings do not depend on `locale` here: Unicode's default ones.
                cx.string("locale")?;
                let stopwords = cx
                    .strings("stopwords")?
                    .unwrap_or_default()
                    .into_iter()
                    .map(|s| if case_sensitive { s } else { s.to_lowercase() })
                    .collect();
                Ok(Self::StringNormalizer {
                    case_change,
                    stopwords,
                    case_sensitive,
                })
            })(),
            "RegexFullMatch" => (|| {
                let pattern = cx.required("pattern", cx.string("pattern"))?;
                Ok(Self::RegexFullMatch(FullMatch::new(&pattern)?))
            })(),
            "TfIdfVectorizer" => TfIdf::parse(cx).map(Self::TfIdfVectorizer),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trie(pool: Vec<i64>, counts: &[i64], indexes: &[u32]) -> Result<NgramTrie> {
        load(&Pool::Int(pool), counts, indexes, 1..=2)
    }

    #[test]
    fn loads_ngrams_into_a_trie() {
        // Unigrams 2, 3; bigrams (5, 6), (2, 7).
        let t = trie(vec![2, 3, 5, 6, 2, 7], &[0, 2], &[4, 3, 2, 1]).unwrap();
        let Vocab::Int(v) = &t.vocab else {
            panic!("int pool")
        };
        let two = t.child(NgramTrie::ROOT, v[&2]).unwrap();
        assert_eq!(t.output(two), Some(4));
        let two_seven = t.child(two, v[&7]).unwrap();
        assert_eq!(t.output(two_seven), Some(1));
        let five = t.child(NgramTrie::ROOT, v[&5]).unwrap();
        assert_eq!(t.output(five), None);
        assert_eq!(t.child(five, NgramTrie::UNKNOWN), None);
    }

    #[test]
    fn rejects_inconsistent_ngram_attributes() {
        // A bigram section of odd length.
        assert!(trie(vec![1, 2, 3], &[0, 0], &[0]).is_err());
        // Counts out of order or past the pool.
        assert!(trie(vec![1, 2, 3, 4], &[2, 0], &[0, 1, 2]).is_err());
        assert!(trie(vec![1, 2], &[0, 4], &[0, 1]).is_err());
        // Too few or too many indexes.
        assert!(trie(vec![1, 2, 3, 4], &[0, 2], &[0, 1]).is_err());
        assert!(trie(vec![1, 2, 3, 4], &[0, 2], &[0, 1, 2, 3]).is_err());
    }

    #[test]
    fn regex_matches_whole_strings_and_names_bad_patterns() {
        let r = FullMatch::new("a|ab").unwrap();
        assert!(r.is_match("ab") && r.is_match("a") && !r.is_match("abc"));
        let e = FullMatch::new("(unclosed").unwrap_err().to_string();
        assert!(e.contains("(unclosed"), "{e}");
    }
}
