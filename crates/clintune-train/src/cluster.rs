//! Multi-node training: where this process stands among the nodes of a run,
//! and burn-collective's global orchestrator that introduces them.
//!
//! Every node runs `clintune train` with the same recipe (whose
//! `hardware.nodes` says how many nodes take part), its own rank, the
//! orchestrator's address, and an address the other nodes reach it at. The
//! orchestrator (`clintune orchestrator`) only introduces the nodes to each
//! other; gradients then travel between nodes directly, node to node
//! (burn-collective's ring all-reduce), after each node has summed its own
//! devices' gradients.
//!
//! Workers are numbered across the whole run: node `r` with `d` devices
//! holds ranks `r·d … r·d + d − 1`, so a run on 2 nodes of 1 device reads its
//! data exactly as a run on 1 node of 2 devices.

use crate::error::TrainError;
use burn::collective::CollectiveConfig;
use clintune_core::WithContext;
use std::fmt;

/// The port `clintune orchestrator` listens on unless told otherwise.
pub const DEFAULT_ORCHESTRATOR_PORT: u16 = 3030;
/// The port a node serves its gradient slices on unless told otherwise.
pub const DEFAULT_DATA_PORT: u16 = 3031;

/// This process's place in a multi-node run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// Nodes taking part.
    pub nodes: usize,
    /// This node, from 0; node 0 writes checkpoints, metrics and the
    /// manifest.
    pub rank: usize,
    /// The orchestrator, `ws://HOST:PORT`.
    pub orchestrator: String,
    /// Where the other nodes reach this one, `ws://HOST:PORT`.
    pub node_address: String,
    /// The port of `node_address`, which this node listens on.
    pub data_port: u16,
}

impl Cluster {
    /// Checks the addresses and the rank, so a typo fails here with a message
    /// rather than as a connection retried forever.
    pub fn new(
        nodes: usize,
        rank: usize,
        orchestrator: &str,
        node_address: &str,
    ) -> Result<Self, TrainError> {
        if rank >= nodes {
            return Err(TrainError::Nodes(format!(
                "node rank {rank} is out of range: the recipe's hardware.nodes is {nodes}, so ranks are 0 to {}",
                nodes.saturating_sub(1)
            )));
        }
        ws_port(orchestrator, "orchestrator")?;
        Ok(Self {
            nodes,
            rank,
            orchestrator: orchestrator.into(),
            node_address: node_address.into(),
            data_port: ws_port(node_address, "node address")?,
        })
    }

    /// burn-collective's configuration for this node's `devices` workers.
    pub fn collective_config(&self, devices: usize) -> Result<CollectiveConfig, TrainError> {
        let bad = |e: String| TrainError::Nodes(format!("bad address: {e}"));
        Ok(CollectiveConfig::default()
            .with_num_devices(devices)
            .with_num_nodes(self.nodes as u32)
            .with_global_address(self.orchestrator.parse().map_err(bad)?)
            .with_node_address(self.node_address.parse().map_err(bad)?)
            .with_data_service_port(self.data_port))
    }
}

impl fmt::Display for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node {} of {} (at {}, orchestrator {})",
            self.rank, self.nodes, self.node_address, self.orchestrator
        )
    }
}

/// The port of a `ws://HOST:PORT` address.
fn ws_port(address: &str, what: &str) -> Result<u16, TrainError> {
    let bad = |why: &str| {
        TrainError::Nodes(format!(
            "{what} {address:?} {why}; write it as ws://HOST:PORT, e.g. ws://node001:{DEFAULT_DATA_PORT}"
        ))
    };
    let rest = address
        .strip_prefix("ws://")
        .ok_or_else(|| bad("does not start with ws://"))?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad("has no port"))?;
    if host.is_empty() || host.contains('/') {
        return Err(bad("has no host"));
    }
    port.parse().map_err(|_| bad("has no valid port"))
}

/// Runs burn-collective's global orchestrator on `port` (all interfaces)
/// until the process is interrupted (Ctrl-C or SIGTERM).
pub fn serve_orchestrator(port: u16) -> Result<(), TrainError> {
    // Binding first gives a clear error for a port in use; burn's server
    // would only log it.
    std::net::TcpListener::bind(("0.0.0.0", port)).map_err(|e| {
        let context = format!("the orchestrator cannot listen on port {port}");
        TrainError::Collective(WithContext::new(context, e).into())
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            TrainError::Collective(WithContext::new("cannot start the orchestrator", e).into())
        })?;
    runtime.block_on(burn_collective::start_global_orchestrator(port));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked() {
        let ok = Cluster::new(2, 1, "ws://head:3030", "ws://node2:3031").unwrap();
        assert_eq!(ok.data_port, 3031);
        for (orch, node, want) in [
            ("head:3030", "ws://n:1", "does not start with ws://"),
            ("ws://head", "ws://n:1", "has no port"),
            ("ws://head:x", "ws://n:1", "valid port"),
            ("ws://head:1", "ws://:1", "has no host"),
        ] {
            let e = Cluster::new(2, 0, orch, node).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        let e = Cluster::new(2, 2, "ws://h:1", "ws://n:1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ranks are 0 to 1"), "{e}");
    }
}
