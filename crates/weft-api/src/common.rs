//! Types shared by several Istio APIs: durations, string matches, selectors, percentages.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration as StdDuration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Labels or annotations: ordered so output is deterministic.
pub type Labels = BTreeMap<String, String>;

/// A duration written the way Istio accepts it: Go's `time.ParseDuration` syntax
/// (`10s`, `1.5s`, `100ms`, `1h30m`, `0`), which includes protobuf JSON's `"3.000001s"`.
///
/// Negative durations are rejected while parsing; range checks (such as Istio's "at least 1ms")
/// belong to validation because they depend on the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub StdDuration);

impl Duration {
    /// The wrapped standard duration.
    pub fn get(self) -> StdDuration {
        self.0
    }
}

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: {reason} (expected e.g. \"10s\", \"1.5s\", \"250ms\", \"1h30m\")"
)]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| DurationError {
            input: input.to_owned(),
            reason,
        };
        let s = input.trim();
        if s.starts_with('-') {
            return Err(err("negative durations are not allowed"));
        }
        let s = s.strip_prefix('+').unwrap_or(s);
        if s.is_empty() {
            return Err(err("empty"));
        }
        let nanos = parse_go(s).map_err(err)?;
        let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| err("too large"))?;
        let sub = u32::try_from(nanos % 1_000_000_000).map_err(|_| err("too large"))?;
        Ok(Duration(StdDuration::new(secs, sub)))
    }
}

/// Parses an unsigned Go duration into nanoseconds.
fn parse_go(s: &str) -> Result<u128, &'static str> {
    if s == "0" {
        return Ok(0);
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_part, after_int) = rest.split_at(int_len);
        let (frac_part, after_num) = match after_int.strip_prefix('.') {
            Some(f) => {
                let n = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
                f.split_at(n)
            }
            None => ("", after_int),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err("expected a number");
        }
        let unit_len = after_num
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after_num.len());
        let (unit, next) = after_num.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err("missing unit (ns, us, ms, s, m, h)"),
            _ => return Err("unknown unit (expected ns, us, ms, s, m or h)"),
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| "number too large")?
        };
        let mut value = int.checked_mul(scale).ok_or("too large")?;
        // Fractional digits beyond nanosecond precision are dropped, as Go does.
        let mut frac_scale = scale;
        for d in frac_part.bytes() {
            frac_scale /= 10;
            if frac_scale == 0 {
                break;
            }
            value = value
                .checked_add(u128::from(d - b'0') * frac_scale)
                .ok_or("too large")?;
        }
        total = total.checked_add(value).ok_or("too large")?;
        if total > u128::from(u64::MAX) * 1_000_000_000 {
            return Err("too large");
        }
        rest = next;
    }
    Ok(total)
}

impl fmt::Display for Duration {
    /// The shortest exact form: `2h`, `90s`, `1.5s`, `250ms`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        const UNITS: [(u128, &str); 6] = [
            (3_600_000_000_000, "h"),
            (60_000_000_000, "m"),
            (1_000_000_000, "s"),
            (1_000_000, "ms"),
            (1_000, "us"),
            (1, "ns"),
        ];
        if nanos == 0 {
            return f.write_str("0s");
        }
        for (scale, unit) in UNITS {
            if nanos.is_multiple_of(scale) {
                return write!(f, "{}{unit}", nanos / scale);
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How a string is matched: Istio's `StringMatch` (`exact`, `prefix` or `regex`).
///
/// An empty object (`{}`) is allowed where Istio allows it (header and query parameter matches:
/// "the header is present") and is represented by [`StringMatch::Present`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawStringMatch", into = "RawStringMatch")]
pub enum StringMatch {
    /// Exact string.
    Exact(String),
    /// Prefix.
    Prefix(String),
    /// RE2 regular expression, matched against the whole value.
    Regex(String),
    /// No condition on the value (`{}`).
    Present,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStringMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    regex: Option<String>,
}

impl TryFrom<RawStringMatch> for StringMatch {
    type Error = String;

    fn try_from(raw: RawStringMatch) -> Result<Self, Self::Error> {
        match (raw.exact, raw.prefix, raw.regex) {
            (None, None, None) => Ok(Self::Present),
            (Some(e), None, None) => Ok(Self::Exact(e)),
            (None, Some(p), None) => Ok(Self::Prefix(p)),
            (None, None, Some(r)) => Ok(Self::Regex(r)),
            _ => Err("only one of exact, prefix or regex may be set".to_owned()),
        }
    }
}

impl From<StringMatch> for RawStringMatch {
    fn from(m: StringMatch) -> Self {
        let mut raw = RawStringMatch::default();
        match m {
            StringMatch::Exact(e) => raw.exact = Some(e),
            StringMatch::Prefix(p) => raw.prefix = Some(p),
            StringMatch::Regex(r) => raw.regex = Some(r),
            StringMatch::Present => {}
        }
        raw
    }
}

/// Selects workloads by labels (`istio.type.v1beta1.WorkloadSelector` and the
/// networking `WorkloadSelector`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadSelector {
    /// Labels a workload must all carry. Empty selects every workload in the namespace.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub match_labels: Labels,
}

impl WorkloadSelector {
    /// Whether `labels` carries every label of this selector.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// `networking.v1alpha3.WorkloadSelector`, used by ServiceEntry and Sidecar: like
/// [`WorkloadSelector`] but the field is `labels`, not `matchLabels`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels a workload must all carry, in the configuration's namespace.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

impl LabelSelector {
    /// Whether `labels` carries every label of this selector.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// `networking.istio.io` `PortSelector`: a port number on the destination service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSelector {
    /// Port number.
    pub number: u32,
}

/// `networking.istio.io` `Percent`: a percentage in `[0, 100]`, fractions allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Percent {
    /// The percentage.
    #[serde(default)]
    pub value: f64,
}

/// `istio.type.v1beta1.PolicyTargetReference`: a Gateway API resource a policy attaches to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyTargetReference {
    /// API group, such as `gateway.networking.k8s.io`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Kind, such as `Gateway` or `Service`.
    pub kind: String,
    /// Name of the target.
    pub name: String,
    /// Namespace of the target; defaults to the policy's own.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> StdDuration {
        s.parse::<Duration>().unwrap().0
    }

    #[test]
    fn parses_go_durations() {
        assert_eq!(d("10s"), StdDuration::from_secs(10));
        assert_eq!(d("1.5s"), StdDuration::from_millis(1500));
        assert_eq!(d("250ms"), StdDuration::from_millis(250));
        assert_eq!(d("1h30m"), StdDuration::from_secs(5400));
        assert_eq!(d("0"), StdDuration::ZERO);
        assert_eq!(d("3.000001s"), StdDuration::new(3, 1000));
        assert_eq!(d("1us"), StdDuration::from_micros(1));
        assert_eq!(d(".5s"), StdDuration::from_millis(500));
    }

    #[test]
    fn rejects_bad_durations() {
        for bad in [
            "",
            "10",
            "s",
            "1x",
            "-1s",
            "1.s.s",
            "99999999999999999999999h",
            "1 s",
        ] {
            assert!(bad.parse::<Duration>().is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn duration_display_round_trips() {
        for s in ["2h", "90s", "1500ms", "0s", "7ns", "1m", "3000001us"] {
            let parsed: Duration = s.parse().unwrap();
            assert_eq!(parsed.to_string().parse::<Duration>().unwrap(), parsed);
        }
        assert_eq!("1.5s".parse::<Duration>().unwrap().to_string(), "1500ms");
    }

    #[test]
    fn string_match_oneof() {
        let m: StringMatch = serde_json::from_str(r#"{"prefix":"/api"}"#).unwrap();
        assert_eq!(m, StringMatch::Prefix("/api".into()));
        let m: StringMatch = serde_json::from_str("{}").unwrap();
        assert_eq!(m, StringMatch::Present);
        assert!(serde_json::from_str::<StringMatch>(r#"{"exact":"a","prefix":"b"}"#).is_err());
        assert!(serde_json::from_str::<StringMatch>(r#"{"exat":"a"}"#).is_err());
    }

    #[test]
    fn selector_matches_subset_of_labels() {
        let sel = WorkloadSelector {
            match_labels: [("app".to_owned(), "reviews".to_owned())].into(),
        };
        let labels: Labels = [("app", "reviews"), ("version", "v1")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert!(sel.matches(&labels));
        assert!(!sel.matches(&Labels::new()));
    }
}
