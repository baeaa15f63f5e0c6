//! Process metrics, read from /proc/self at each scrape (prometheus-client
//! has no process collector): resident and virtual memory, open and
//! allowed file descriptors, and the start time. The names are the
//! conventional `process_*` ones, so existing dashboards work. Where
//! /proc cannot be read (not Linux), the metric is left out.

use std::path::Path;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// Registers the process collector; `start` is the start time (seconds
/// since the epoch).
pub(super) fn register(registry: &mut Registry, start: f64) {
    registry.register_collector(Box::new(Process { start }));
}

#[derive(Debug)]
struct Process {
    start: f64,
}

/// A value in kB of a `/proc/self/status` line (`VmRSS:   1234 kB`), in bytes.
fn status_bytes(status: &str, key: &str) -> Option<i64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    let rest = line[key.len()..].strip_prefix(':')?;
    let kb: i64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
    kb.checked_mul(1024)
}

/// The soft limit of open files from `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<i64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    soft.parse().ok()
}

fn open_fds(dir: &Path) -> Option<i64> {
    let count = std::fs::read_dir(dir).ok()?.count();
    i64::try_from(count).ok()
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: Option<impl Into<f64>>,
) -> Result<(), std::fmt::Error> {
    let Some(value) = value else {
        return Ok(());
    };
    let gauge = ConstGauge::new(value.into());
    let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
    gauge.encode(metric)
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let bytes = |key| status_bytes(&status, key).map(|b| b as f64);
        gauge(
            &mut encoder,
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            bytes("VmRSS"),
        )?;
        gauge(
            &mut encoder,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            bytes("VmSize"),
        )?;
        gauge(
            &mut encoder,
            "process_open_fds",
            "Open file descriptors",
            open_fds(Path::new("/proc/self/fd")).map(|n| n as f64),
        )?;
        gauge(
            &mut encoder,
            "process_max_fds",
            "The limit of open file descriptors (soft)",
            max_open_files(&limits).map(|n| n as f64),
        )?;
        gauge(
            &mut encoder,
            "process_start_time_seconds",
            "When the milter started, in seconds since the epoch",
            Some(self.start),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_status_and_limits_lines_are_read() {
        let status = "Name:\ttollgate\nVmSize:\t  123456 kB\nVmRSS:\t    4096 kB\n";
        assert_eq!(status_bytes(status, "VmRSS"), Some(4096 * 1024));
        assert_eq!(status_bytes(status, "VmSize"), Some(123_456 * 1024));
        assert_eq!(status_bytes(status, "VmSwap"), None);
        assert_eq!(status_bytes("VmRSS:\tlots kB\n", "VmRSS"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(
            max_open_files("Max open files  unlimited unlimited files\n"),
            None
        );
    }
}
