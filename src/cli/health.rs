//! `tollgate health`: connects to the milter socket of a configuration and
//! does the milter protocol's option negotiation, for container health
//! checks and monitoring. Exit 0 when the milter answers.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::config::{Config, DEFAULT_PATH, Listen};

/// The arguments of `tollgate health`.
#[derive(Clone, Debug, clap::Args)]
pub struct HealthArgs {
    /// The configuration file whose `listen` socket to try.
    #[arg(long, default_value = DEFAULT_PATH)]
    pub config: PathBuf,
    /// How long to wait for the answer, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
}

/// Why the milter is not healthy.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The configuration is bad.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// No answer, or a wrong one.
    #[error("milter at {listen} is not answering: {source}")]
    Milter {
        /// Where.
        listen: Listen,
        /// Why.
        source: io::Error,
    },
}

/// Checks the milter of the configuration.
pub async fn run(args: &HealthArgs) -> Result<Listen, HealthError> {
    let config = Config::load(&args.config)?;
    let mut listen = config.listen.clone();
    // A wildcard address is reached through loopback.
    if let Listen::Inet(addr) = &mut listen
        && addr.ip().is_unspecified()
    {
        addr.set_ip(if addr.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let wait = Duration::try_from_secs_f64(args.timeout).unwrap_or(Duration::from_secs(5));
    let result = tokio::time::timeout(wait, probe(&listen))
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")));
    result.map_err(|source| HealthError::Milter {
        listen: listen.clone(),
        source,
    })?;
    Ok(listen)
}

/// Option negotiation (SMFIC_OPTNEG), then quit (SMFIC_QUIT).
pub async fn probe(listen: &Listen) -> io::Result<()> {
    match listen {
        Listen::Inet(addr) => negotiate(TcpStream::connect(addr).await?).await,
        Listen::Unix(path) => negotiate(UnixStream::connect(path).await?).await,
    }
}

async fn negotiate<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) -> io::Result<()> {
    let mut packet = Vec::with_capacity(17);
    packet.extend_from_slice(&13u32.to_be_bytes());
    packet.push(b'O');
    packet.extend_from_slice(&6u32.to_be_bytes()); // protocol version
    packet.extend_from_slice(&0x1ffu32.to_be_bytes()); // actions offered
    packet.extend_from_slice(&0x1f_ffffu32.to_be_bytes()); // protocol steps offered
    stream.write_all(&packet).await?;
    let len = stream.read_u32().await?;
    if !(1..=1 << 16).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad reply length",
        ));
    }
    let mut reply = vec![0; len as usize];
    stream.read_exact(&mut reply).await?;
    if reply[0] != b'O' {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected reply command {:?}", reply[0] as char),
        ));
    }
    stream.write_all(&[0, 0, 0, 1, b'Q']).await?;
    Ok(())
}
