use crate::base::{Address, ProtocolClient};
use std::time::{Duration, Instant};
use tracing_core::{Level, LevelFilter};
use tracing_subscriber::{
    Layer, filter::filter_fn, layer::SubscriberExt, registry, util::SubscriberInitExt,
};

/// Utilities to help handle communication termination.
pub async fn os_shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c()
            .await
            .expect("failed to install Ctrl+C handler");
    };

    #[cfg(unix)]
    let terminate = async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("failed to install signal handler")
            .recv()
            .await;
    };

    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// clintune patch: how long [`connect_patiently`] keeps trying.
const CONNECT_PATIENCE: Duration = Duration::from_secs(60);

/// clintune patch: connects to a peer's `route`, trying again for up to a
/// minute while the peer refuses. A peer learns the other nodes' addresses
/// as soon as the last node registers, but that node starts its server on
/// another task: under load, a peer's first connection could arrive before
/// the server was listening, and 0.21.0 then panicked ("Failed to connect to
/// data server"), failing a run that was about to start. `None` once the
/// minute is spent.
pub async fn connect_patiently<C: ProtocolClient>(
    address: &Address,
    route: &str,
) -> Option<C::Channel> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(channel) = C::connect(address.clone(), route).await {
            return Some(channel);
        }
        if start.elapsed() >= CONNECT_PATIENCE {
            log::warn!("Failed to connect to {address:?} for {route:?} in {CONNECT_PATIENCE:?}");
            return None;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

pub(crate) fn init_logging() {
    let layer = tracing_subscriber::fmt::layer()
        .with_filter(LevelFilter::INFO)
        .with_filter(filter_fn(|m| {
            if let Some(path) = m.module_path() {
                // The wgpu crate is logging too much, so we skip `info` level.
                if path.starts_with("wgpu") && *m.level() >= Level::INFO {
                    return false;
                }
            }
            true
        }));

    // If we start multiple servers in the same process, this will fail, it's ok
    let _ = registry().with(layer).try_init();
}
