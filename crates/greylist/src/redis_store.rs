//! The Redis store, for several MX hosts behind one MX record: a retry
//! that reaches another host finds the triplet its first attempt left.
//!
//! - One multiplexed connection per process (the `redis` crate's
//!   connection manager), which reconnects by itself after Redis restarts.
//! - The check-and-set is one Lua script (atomic on the server) running the
//!   same rules as [`crate::rules`]; the store tests hold both stores to the
//!   same cases.
//! - Keys expire by Redis TTL: a pending triplet after `retry_window`, a
//!   passed triplet or a network `expire` after its last pass.
//! - `redis://[:PASSWORD@]HOST:PORT/DB` (or `redis://USER:PASSWORD@…` for
//!   Redis 6 ACLs), `rediss://` for TLS (rustls, the system's roots).
//!
//! Keys: `tollgate:greylist:t:NETWORK|SENDER|RECIPIENT` and
//! `tollgate:greylist:n:NETWORK`; values are decimal numbers separated by
//! spaces (`first passed passes`, `passes last manual`).

use std::fmt;
use std::time::Duration;

use ipnet::IpNet;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use crate::rules::{NetworkRecord, Settings, TripletRecord};
use crate::{Counts, Decision, Entry, Store, StoreError, StoreFuture, Triplet, count_entries};

/// The prefix of every key.
pub const PREFIX: &str = "tollgate:greylist:";
const TRIPLET: &str = "tollgate:greylist:t:";
const NETWORK: &str = "tollgate:greylist:n:";

/// How long to wait for a connection or an answer.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The rules of [`crate::rules::decide`], on the server. KEYS: the
/// triplet, the network. ARGV: now, delay, retry window, expire,
/// auto_allow (ms, ms, ms, ms, count). Returns {code, ms}: 0 new (ms: retry
/// in), 1 early (retry in), 2 passed (delayed), 3 known, 4 auto-allowed,
/// 5 allowed by hand.
const CHECK: &str = r"
local now, delay, window, expire, auto =
  tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local function nums(v)
  local t = {}
  for x in string.gmatch(v, '%d+') do t[#t + 1] = tonumber(x) end
  return t
end
local function fmt(a, b, c) return string.format('%.0f %.0f %.0f', a, b, c) end
local n = nil
local nv = redis.call('GET', KEYS[2])
if nv then
  n = nums(nv)
  if #n < 3 or now > n[2] + expire then n = nil end
end
if n and (n[3] == 1 or (auto > 0 and n[1] >= auto)) then
  redis.call('SET', KEYS[2], fmt(n[1], now, n[3]), 'PX', expire)
  if n[3] == 1 then return {5, 0} end
  return {4, 0}
end
local t = nil
local tv = redis.call('GET', KEYS[1])
if tv then
  t = nums(tv)
  if #t < 3 then t = nil end
end
local function fresh()
  redis.call('SET', KEYS[1], fmt(now, 0, 0), 'PX', window)
  return {0, delay}
end
if not t then return fresh() end
if t[3] > 0 then
  if now > t[2] + expire then return fresh() end
  redis.call('SET', KEYS[1], fmt(t[1], now, t[3] + 1), 'PX', expire)
  return {3, 0}
end
if now < t[1] + delay then return {1, t[1] + delay - now} end
if now > t[1] + window then return fresh() end
redis.call('SET', KEYS[1], fmt(t[1], now, 1), 'PX', expire)
local np, nm = 0, 0
if n then np, nm = n[1], n[3] end
redis.call('SET', KEYS[2], fmt(np + 1, now, nm), 'PX', expire)
return {2, now - t[1]}
";

/// The Redis store.
#[derive(Clone)]
pub struct RedisStore {
    url: String,
    settings: Settings,
    conn: ConnectionManager,
    check: Script,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &redacted(&self.url))
            .finish()
    }
}

/// A URL with its password replaced by `***`, for logs and errors.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((auth, host)) => match auth.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://***@{host}"),
        },
        None => url.to_owned(),
    }
}

impl RedisStore {
    /// Connects to `url` and checks that Redis answers (and takes the
    /// password, if any).
    pub async fn open(url: &str, settings: Settings) -> Result<RedisStore, StoreError> {
        let open_error = |e: redis::RedisError| StoreError::Open {
            what: redacted(url),
            problem: e.to_string(),
        };
        let client = redis::Client::open(url).map_err(open_error)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let mut conn = tokio::time::timeout(
            TIMEOUT * 2,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| StoreError::Open {
            what: redacted(url),
            problem: format!("no connection within {:?}", TIMEOUT * 2),
        })?
        .map_err(open_error)?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(open_error)?;
        Ok(RedisStore {
            url: url.to_owned(),
            settings,
            conn,
            check: Script::new(CHECK),
        })
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

fn backend(e: redis::RedisError) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn ms(d: Duration) -> u64 {
    crate::rules::millis(d)
}

fn numbers(value: &str) -> Vec<u64> {
    value
        .split_ascii_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect()
}

fn triplet_record(value: &str) -> Option<TripletRecord> {
    match numbers(value)[..] {
        [first, passed, passes, ..] => Some(TripletRecord {
            first,
            passed,
            passes: u32::try_from(passes).unwrap_or(u32::MAX),
        }),
        _ => None,
    }
}

fn network_record(value: &str) -> Option<NetworkRecord> {
    match numbers(value)[..] {
        [passes, last, manual, ..] => Some(NetworkRecord {
            passes: u32::try_from(passes).unwrap_or(u32::MAX),
            last,
            manual: manual != 0,
        }),
        _ => None,
    }
}

impl Store for RedisStore {
    fn check<'a>(&'a self, triplet: &'a Triplet, now: u64) -> StoreFuture<'a, Decision> {
        Box::pin(async move {
            let s = &self.settings;
            let mut conn = self.conn();
            let (code, millis): (i64, i64) = self
                .check
                .key(format!("{TRIPLET}{}", triplet.key()))
                .key(format!("{NETWORK}{}", triplet.network))
                .arg(now)
                .arg(ms(s.delay))
                .arg(ms(s.retry_window))
                .arg(ms(s.expire))
                .arg(s.auto_allow)
                .invoke_async(&mut conn)
                .await
                .map_err(backend)?;
            let d = Duration::from_millis(u64::try_from(millis).unwrap_or(0));
            Ok(match code {
                0 => Decision::New { retry_in: d },
                1 => Decision::Early { retry_in: d },
                2 => Decision::Passed { delayed: d },
                3 => Decision::Known,
                4 => Decision::AutoAllowed,
                5 => Decision::Allowed,
                other => {
                    return Err(StoreError::Backend(format!(
                        "the check script answered {other}"
                    )));
                }
            })
        })
    }

    fn entries(&self, now: u64) -> StoreFuture<'_, Vec<Entry>> {
        Box::pin(async move {
            let mut conn = self.conn();
            let mut keys: Vec<String> = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(format!("{PREFIX}*"))
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await
                    .map_err(backend)?;
                keys.extend(batch);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            keys.sort();
            keys.dedup();
            let mut out = Vec::new();
            for chunk in keys.chunks(500) {
                let values: Vec<Option<String>> = conn.mget(chunk).await.map_err(backend)?;
                for (key, value) in chunk.iter().zip(values) {
                    let Some(value) = value else { continue };
                    if let Some(rest) = key.strip_prefix(NETWORK) {
                        if let (Ok(net), Some(n)) = (rest.parse::<IpNet>(), network_record(&value))
                            && !crate::rules::network_expired(&n, now, &self.settings)
                        {
                            out.push(Entry::Network(net, n));
                        }
                    } else if let Some(rest) = key.strip_prefix(TRIPLET)
                        && let (Some(t), Some(r)) =
                            (Triplet::from_key(rest), triplet_record(&value))
                        && !crate::rules::triplet_expired(&r, now, &self.settings)
                    {
                        out.push(Entry::Triplet(t, r));
                    }
                }
            }
            // Networks first, like the embedded store.
            out.sort_by_key(|e| matches!(e, Entry::Triplet(..)));
            Ok(out)
        })
    }

    fn counts(&self, now: u64) -> StoreFuture<'_, Counts> {
        Box::pin(async move {
            let entries = self.entries(now).await?;
            Ok(count_entries(&entries, &self.settings))
        })
    }

    fn allow_network(&self, network: IpNet, now: u64) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut conn = self.conn();
            let key = format!("{NETWORK}{network}");
            let old: Option<String> = conn.get(&key).await.map_err(backend)?;
            let passes = old
                .as_deref()
                .and_then(network_record)
                .map_or(0, |n| n.passes);
            let value = format!("{passes} {now} 1");
            let _: () = conn
                .pset_ex(&key, value, ms(self.settings.expire))
                .await
                .map_err(backend)?;
            Ok(())
        })
    }

    fn allow_triplet<'a>(&'a self, triplet: &'a Triplet, now: u64) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.conn();
            let key = format!("{TRIPLET}{}", triplet.key());
            let old: Option<String> = conn.get(&key).await.map_err(backend)?;
            let first = old
                .as_deref()
                .and_then(triplet_record)
                .map_or(now, |t| t.first);
            let value = format!("{first} {now} 1");
            let _: () = conn
                .pset_ex(&key, value, ms(self.settings.expire))
                .await
                .map_err(backend)?;
            Ok(())
        })
    }

    fn forget_network(&self, network: IpNet) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let mut conn = self.conn();
            let n: u64 = conn
                .del(format!("{NETWORK}{network}"))
                .await
                .map_err(backend)?;
            Ok(n > 0)
        })
    }

    fn forget_triplet<'a>(&'a self, triplet: &'a Triplet) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.conn();
            let n: u64 = conn
                .del(format!("{TRIPLET}{}", triplet.key()))
                .await
                .map_err(backend)?;
            Ok(n > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redacted("redis://:secret@192.0.2.1:6379/0"),
            "redis://:***@192.0.2.1:6379/0"
        );
        assert_eq!(
            redacted("rediss://user:secret@redis.example.com/1"),
            "rediss://user:***@redis.example.com/1"
        );
        assert_eq!(
            redacted("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
    }
}
