//! Opening the greylisting store a configuration names, for the milter
//! and `tollgate greylist`.

use std::sync::Arc;

use tollgate_greylist::{Clock, EmbeddedStore, RedisStore, Store, StoreError};

use crate::config::{Greylisting, StoreKind};

/// Opens the store of `config`: the embedded file (created if missing; its
/// directory must exist) or a connection to Redis that answered PING.
pub async fn open_store(
    config: &Greylisting,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match &config.store {
        StoreKind::Embedded(path) => {
            let (path, settings) = (path.clone(), config.settings);
            // Opening creates and checks the file: off the runtime.
            let store =
                tokio::task::spawn_blocking(move || EmbeddedStore::open(&path, settings, clock))
                    .await
                    .map_err(|e| StoreError::Backend(e.to_string()))??;
            Arc::new(store)
        }
        StoreKind::Redis(url) => Arc::new(RedisStore::open(url, config.settings).await?),
    })
}
