//! The configuration file as written: serde structs that mirror
//! milter.yaml key for key, refusing unknown keys. Validation into real
//! types happens in [`super::validate`].

use std::collections::BTreeMap;

use serde::Deserialize;

/// The top level of milter.yaml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawConfig {
    pub listen: Option<String>,
    pub socket_mode: Option<String>,
    pub socket_group: Option<String>,
    pub max_connections: Option<usize>,
    pub connection_timeout: Option<serde_yaml::Value>,
    pub hostname: Option<String>,
    pub authserv_id: Option<String>,
    pub local_names: Vec<String>,
    pub reject_at: Option<String>,
    pub exempt_recipients: Option<Vec<String>>,
    pub dry_run: bool,
    pub shutdown_timeout: Option<serde_yaml::Value>,
    pub headers: RawHeaders,
    pub dns: RawDns,
    pub dnsbl: RawDnsbl,
    pub skip: RawSkip,
    pub helo: RawHelo,
    pub policy: BTreeMap<String, serde_yaml::Value>,
    pub greylist: RawGreylist,
    pub log: RawLog,
    pub metrics: RawMetrics,
}

/// `greylist:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawGreylist {
    pub store: Option<String>,
    pub path: Option<String>,
    pub redis: Option<String>,
    pub delay: Option<serde_yaml::Value>,
    pub retry_window: Option<serde_yaml::Value>,
    pub expire: Option<serde_yaml::Value>,
    pub auto_allow: Option<u32>,
    pub network_v4: Option<u8>,
    pub network_v6: Option<u8>,
    pub header: Option<bool>,
}

/// `headers:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawHeaders {
    pub received_spf: bool,
    pub authentication_results: bool,
}

impl Default for RawHeaders {
    fn default() -> Self {
        RawHeaders {
            received_spf: true,
            authentication_results: true,
        }
    }
}

/// `dns:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawDns {
    pub nameservers: Vec<String>,
    pub timeout: Option<serde_yaml::Value>,
    pub attempts: Option<usize>,
    pub cache_size: Option<usize>,
    pub time_budget: Option<serde_yaml::Value>,
    pub parallel: Option<bool>,
}

/// `dnsbl:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawDnsbl {
    pub lists: Vec<RawDnsList>,
}

/// One entry of `dnsbl.lists`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDnsList {
    pub zone: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub codes: Option<Vec<String>>,
}

/// `skip:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawSkip {
    pub networks: Option<Vec<String>>,
    pub authenticated: Option<bool>,
    pub helo_names: Vec<String>,
    pub sender_domains: Vec<String>,
    pub client_names: Vec<String>,
    pub forwarders: Vec<String>,
}

/// `helo:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawHelo {
    pub refused: Vec<String>,
}

/// `log:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLog {
    pub level: Option<String>,
    pub format: Option<String>,
}

/// `metrics:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawMetrics {
    pub listen: Option<String>,
}
