//! Loader for the OpenSPF test suite's YAML form (`rfc7208-tests.yml`).
//!
//! A suite file is a stream of YAML documents, one scenario each, with a
//! `description`, a `tests` mapping and a `zonedata` mapping. The zone data
//! follows the conventions of the suite's own driver (pyspf's test driver):
//!
//! - a name maps to a list of entries, each a one-key mapping (`TXT`, `SPF`,
//!   `A`, `AAAA`, `MX: [pref, host]`, `PTR`, `CNAME`) or the bare string
//!   `TIMEOUT`;
//! - `TXT` and `SPF` values are a string or a list of strings (the record's
//!   character-strings; `[]` is a record with no strings);
//! - `TXT: NONE` means "no TXT record here" and also suppresses the next rule;
//! - an `SPF` entry is also served as TXT for a name with no `TXT` entry; the
//!   generated TXT records follow all listed entries (so they come after a
//!   `TIMEOUT` marker, as in the suite's driver);
//! - `TIMEOUT` becomes [`Entry::Timeout`] at its position: queries for the
//!   name time out, except for record types listed before it;
//! - a name listed without usable entries still exists (NODATA, not NXDOMAIN).
//!
//! YAML double-quoted escapes such as `"\xEF"` are decoded to the code point
//! they name and kept in Rust `String`s.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde::Deserialize;
use serde_yaml::{Mapping, Value};
use tollgate_dns::Mx;
use tollgate_dns::memory::{Entry, RecordData, Zone};

/// One scenario (YAML document) of the suite: its tests and the zone they run against.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The scenario's `description`.
    pub description: String,
    /// The tests, in file order.
    pub tests: Vec<TestCase>,
    /// The scenario's `zonedata`.
    pub zone: Zone,
}

/// One test of a scenario.
#[derive(Debug, Clone)]
pub struct TestCase {
    /// The test's key in the `tests` mapping.
    pub name: String,
    /// The test's `description`, if any.
    pub description: Option<String>,
    /// The test's `comment`, if any.
    pub comment: Option<String>,
    /// The RFC sections the test covers (`spec`, one or several).
    pub spec: Vec<String>,
    /// The HELO name.
    pub helo: String,
    /// The client address.
    pub host: IpAddr,
    /// The MAIL FROM address (may be empty).
    pub mailfrom: String,
    /// The acceptable results, in lower case: any of them passes.
    pub result: Vec<String>,
    /// The expected explanation (`DEFAULT` means the engine's default text), if any.
    pub explanation: Option<String>,
}

impl TestCase {
    /// Judges an engine's answer by the suite driver's conventions: where
    /// `result` is a list any value passes; `explanation: DEFAULT` means
    /// the engine's own default text (`from_domain` false); any other
    /// explanation must be the domain's, compared without regard to ASCII
    /// case (the suite writes IPv6 nibbles in upper case in v-macro-ip6,
    /// RFC 7208 §7.4 in lower case). `Err` says how the answer differs.
    pub fn judge(&self, result: &str, explanation: Option<(&str, bool)>) -> Result<(), String> {
        if !self.result.iter().any(|r| r == result) {
            return Err(format!("result {result} (expected {:?})", self.result));
        }
        match (self.explanation.as_deref(), explanation) {
            (None, _) => Ok(()),
            (Some("DEFAULT"), Some((_, false))) => Ok(()),
            (Some(want), Some((got, true))) if want.eq_ignore_ascii_case(got) => Ok(()),
            (Some(want), got) => Err(format!("explanation {got:?}, expected {want:?}")),
        }
    }
}

/// Why a suite file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The text is not valid YAML.
    #[error("invalid yaml: {0}")]
    Yaml(String),
    /// The YAML does not have the suite's shape.
    #[error("{0}")]
    Invalid(String),
}

/// Parses every scenario (YAML document) of a suite file's text.
pub fn parse_suite(yaml: &str) -> Result<Vec<Scenario>, SuiteError> {
    let mut scenarios = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let value = Value::deserialize(document).map_err(|e| SuiteError::Yaml(e.to_string()))?;
        if value.is_null() {
            // A document of comments only (the file's header).
            continue;
        }
        let scenario = parse_scenario(&value)
            .map_err(|e| SuiteError::Invalid(format!("document {}: {e}", index + 1)))?;
        scenarios.push(scenario);
    }
    Ok(scenarios)
}

/// Reads and parses a suite file.
pub fn load_suite(path: &Path) -> Result<Vec<Scenario>, SuiteError> {
    let text = std::fs::read_to_string(path).map_err(|source| SuiteError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_suite(&text)
}

/// Parses a `zonedata`-style mapping (name → list of entries) into a zone,
/// for hand-written test zones.
pub fn parse_zone(yaml: &str) -> Result<Zone, SuiteError> {
    let value: Value = serde_yaml::from_str(yaml).map_err(|e| SuiteError::Yaml(e.to_string()))?;
    zone_from_value(&value).map_err(SuiteError::Invalid)
}

fn parse_scenario(value: &Value) -> Result<Scenario, String> {
    let map = value.as_mapping().ok_or("a scenario must be a mapping")?;
    let description = match map.get("description") {
        Some(v) => scalar(v).ok_or("description must be a string")?,
        None => String::new(),
    };
    let context = |e: String| format!("scenario {description:?}: {e}");
    let zone = match map.get("zonedata") {
        Some(v) => zone_from_value(v).map_err(context)?,
        None => Zone::new(),
    };
    let mut tests = Vec::new();
    match map.get("tests") {
        Some(Value::Mapping(entries)) => {
            for (key, test) in entries {
                let name =
                    scalar(key).ok_or_else(|| context("test names must be strings".into()))?;
                let test =
                    parse_test(&name, test).map_err(|e| context(format!("test {name:?}: {e}")))?;
                tests.push(test);
            }
        }
        Some(Value::Null) | None => {}
        Some(_) => return Err(context("tests must be a mapping".into())),
    }
    Ok(Scenario {
        description,
        tests,
        zone,
    })
}

fn parse_test(name: &str, value: &Value) -> Result<TestCase, String> {
    let map = value.as_mapping().ok_or("a test must be a mapping")?;
    let optional = |key: &str| -> Result<Option<String>, String> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => scalar(v)
                .map(Some)
                .ok_or_else(|| format!("{key} must be a string")),
        }
    };
    let required = |key: &str| -> Result<String, String> {
        match map.get(key) {
            None => Err(format!("{key} is missing")),
            // `mailfrom:` with nothing after it is the empty sender.
            Some(Value::Null) => Ok(String::new()),
            Some(v) => scalar(v).ok_or_else(|| format!("{key} must be a string")),
        }
    };
    let host_text = required("host")?;
    let host = host_text
        .trim()
        .parse::<IpAddr>()
        .map_err(|_| format!("host {host_text:?} is not an IP address"))?;
    let result = strings(map.get("result").ok_or("result is missing")?)
        .ok_or("result must be a string or a list of strings")?
        .into_iter()
        .map(|r| r.trim().to_ascii_lowercase())
        .collect::<Vec<_>>();
    if result.is_empty() {
        return Err("result is empty".into());
    }
    let spec = match map.get("spec") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => strings(v).ok_or("spec must be a string or a list of strings")?,
    };
    Ok(TestCase {
        name: name.to_owned(),
        description: optional("description")?,
        comment: optional("comment")?,
        spec,
        helo: required("helo")?,
        host,
        mailfrom: required("mailfrom")?,
        result,
        explanation: optional("explanation")?,
    })
}

fn zone_from_value(value: &Value) -> Result<Zone, String> {
    let mut zone = Zone::new();
    let map: &Mapping = match value {
        Value::Mapping(map) => map,
        Value::Null => return Ok(zone),
        _ => return Err("zone data must be a mapping of names to lists of entries".into()),
    };
    for (key, entries) in map {
        let name = scalar(key).ok_or("zone names must be strings")?;
        add_name_entries(&mut zone, &name, entries)
            .map_err(|e| format!("zone name {name:?}: {e}"))?;
    }
    Ok(zone)
}

fn add_name_entries(zone: &mut Zone, name: &str, entries: &Value) -> Result<(), String> {
    // The name exists even if none of its entries yields a record.
    zone.add_name(name);
    let entries: &[Value] = match entries {
        Value::Sequence(seq) => seq,
        Value::Null => &[],
        _ => return Err("entries must be a list".into()),
    };
    let has_txt = entries
        .iter()
        .filter_map(Value::as_mapping)
        .any(|m| m.contains_key("TXT"));
    let mut generated_txt = Vec::new();
    for entry in entries {
        match entry {
            Value::String(s) if s == "TIMEOUT" => {
                zone.add_entry(name, Entry::Timeout);
            }
            Value::Mapping(m) => {
                for (rtype, data) in m {
                    let rtype = scalar(rtype).ok_or("record types must be strings")?;
                    if let Some(record) = record(&rtype, data)? {
                        if let RecordData::Spf(strings) = &record
                            && !has_txt
                        {
                            generated_txt.push(RecordData::Txt(strings.clone()));
                        }
                        zone.add(name, record);
                    }
                }
            }
            other => return Err(format!("unknown entry {other:?}")),
        }
    }
    for txt in generated_txt {
        zone.add(name, txt);
    }
    Ok(())
}

/// One record from a `TYPE: value` pair; `None` for `TXT: NONE` / `SPF: NONE`.
fn record(rtype: &str, data: &Value) -> Result<Option<RecordData>, String> {
    let text = || scalar(data).ok_or_else(|| format!("{rtype} value must be a string"));
    let record = match rtype.to_ascii_uppercase().as_str() {
        "TXT" | "SPF" => {
            if data.as_str() == Some("NONE") {
                return Ok(None);
            }
            let strings = strings(data)
                .ok_or_else(|| format!("{rtype} value must be a string or a list of strings"))?;
            if rtype.eq_ignore_ascii_case("TXT") {
                RecordData::Txt(strings)
            } else {
                RecordData::Spf(strings)
            }
        }
        "A" => {
            let t = text()?;
            RecordData::A(
                t.trim()
                    .parse::<Ipv4Addr>()
                    .map_err(|_| format!("{t:?} is not an IPv4 address"))?,
            )
        }
        "AAAA" => {
            let t = text()?;
            RecordData::Aaaa(
                t.trim()
                    .parse::<Ipv6Addr>()
                    .map_err(|_| format!("{t:?} is not an IPv6 address"))?,
            )
        }
        "MX" => {
            let pair = data
                .as_sequence()
                .filter(|s| s.len() == 2)
                .ok_or("MX value must be [preference, host]")?;
            let preference = match &pair[0] {
                Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                other => scalar(other).and_then(|s| s.trim().parse().ok()),
            }
            .ok_or("MX preference must be a number from 0 to 65535")?;
            let exchange = match &pair[1] {
                Value::Null => String::new(),
                other => scalar(other).ok_or("MX host must be a string")?,
            };
            RecordData::Mx(Mx {
                preference,
                exchange,
            })
        }
        "PTR" => RecordData::Ptr(text()?),
        "CNAME" => RecordData::Cname(text()?),
        other => return Err(format!("unknown record type {other:?}")),
    };
    Ok(Some(record))
}

/// A scalar as text: strings as they are, numbers and booleans as written.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A scalar or a list of scalars, as a list of strings.
fn strings(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Sequence(seq) => seq.iter().map(scalar).collect(),
        Value::Null => Some(Vec::new()),
        other => scalar(other).map(|s| vec![s]),
    }
}
