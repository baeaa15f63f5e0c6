//! Durations in the configuration: `250ms`, `5s`, `2m`, `1h`, `2d`, or a
//! plain number of seconds.

use std::time::Duration;

/// Parses a configuration duration; the error says what is expected.
pub(crate) fn parse_duration(value: &serde_yaml::Value) -> Result<Duration, String> {
    let text = match value {
        serde_yaml::Value::Number(n) => {
            let secs = n
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .ok_or_else(|| format!("{n} is not a duration"))?;
            return Duration::try_from_secs_f64(secs).map_err(|_| format!("{n} is too long"));
        }
        serde_yaml::Value::String(s) => s.trim(),
        _ => return Err("expected a duration such as 5s or 250ms".to_owned()),
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (use e.g. 5s, 250ms, 2m, 2d)"))?;
    let secs = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86400.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use ms, s, m, h or d)"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Duration, String> {
        parse_duration(&serde_yaml::from_str(yaml).unwrap())
    }

    #[test]
    fn durations_take_units_or_seconds() {
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse("2d").unwrap(), Duration::from_secs(2 * 86400));
        assert_eq!(parse("35d").unwrap(), Duration::from_secs(35 * 86400));
        assert_eq!(parse("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse("5 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse("-1").is_err());
        assert!(parse("[1]").is_err());
        assert_eq!(parse("1e300").unwrap_err(), "1e300 is too long");
        assert_eq!(
            parse("99999999999999999999h").unwrap_err(),
            "\"99999999999999999999h\" is too long"
        );
    }
}
