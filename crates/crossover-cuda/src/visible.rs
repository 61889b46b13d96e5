//! `CUDA_VISIBLE_DEVICES`, read the way the driver reads it: unset shows every device,
//! empty shows none, and a list stops at its first entry that names no device.

/// Which devices the environment lets crossover see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Visible {
    All,
    /// None visible, and why.
    None(String),
    /// The driver renumbers these from 0 in this order; ordinals index this list.
    List(Vec<String>),
}

/// Parses the value of `CUDA_VISIBLE_DEVICES` (`None` when unset).
pub fn parse(value: Option<&str>) -> Visible {
    let Some(value) = value else {
        return Visible::All;
    };
    if value.trim().is_empty() {
        return Visible::None("CUDA_VISIBLE_DEVICES is set and empty".into());
    }
    let entries: Vec<String> = value
        .split(',')
        .map(str::trim)
        .take_while(|e| is_device_entry(e))
        .map(str::to_string)
        .collect();
    if entries.is_empty() {
        return Visible::None(format!("CUDA_VISIBLE_DEVICES={value:?} names no device"));
    }
    Visible::List(entries)
}

/// A decimal ordinal, or a (possibly shortened) `GPU-`/`MIG-` UUID.
fn is_device_entry(e: &str) -> bool {
    (!e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()))
        || e.strip_prefix("GPU-")
            .or_else(|| e.strip_prefix("MIG-"))
            .is_some_and(|r| !r.is_empty())
}

/// The current environment's setting.
pub fn from_env() -> Visible {
    match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(v) => parse(Some(&v)),
        Err(std::env::VarError::NotPresent) => Visible::All,
        Err(std::env::VarError::NotUnicode(_)) => {
            Visible::None("CUDA_VISIBLE_DEVICES is not valid UTF-8".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_is_all_and_empty_is_none() {
        assert_eq!(parse(None), Visible::All);
        assert!(matches!(parse(Some("")), Visible::None(r) if r.contains("empty")));
        assert!(matches!(parse(Some("  ")), Visible::None(_)));
    }

    #[test]
    fn lists_keep_order_and_stop_at_the_first_bad_entry() {
        assert_eq!(
            parse(Some("1,0")),
            Visible::List(vec!["1".into(), "0".into()])
        );
        assert_eq!(
            parse(Some(" 2 , 3 ")),
            Visible::List(vec!["2".into(), "3".into()])
        );
        assert_eq!(parse(Some("0,x,1")), Visible::List(vec!["0".into()]));
        assert_eq!(
            parse(Some("GPU-8e6b,MIG-1")),
            Visible::List(vec!["GPU-8e6b".into(), "MIG-1".into()])
        );
    }

    #[test]
    fn a_list_naming_nothing_is_none() {
        for v in ["-1", "NoDevFiles", ",", "GPU-"] {
            assert!(
                matches!(parse(Some(v)), Visible::None(r) if r.contains("names no device")),
                "{v}"
            );
        }
    }
}
