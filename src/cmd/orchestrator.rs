//! `clintune orchestrator`: introduce the nodes of multi-node training runs.

use clap::Args;
use clintune_train::cluster::{DEFAULT_ORCHESTRATOR_PORT, serve_orchestrator};

/// Arguments of `clintune orchestrator`.
#[derive(Debug, Args)]
#[command(
    after_help = "Start it once, on a machine every node reaches, before or while the \
    nodes start (they retry until it answers); stop it with Ctrl-C or SIGTERM when the run ends.\n\n\
    Example:\n  \
    clintune orchestrator --port 3030\n  \
    clintune train recipes/NAME.toml --node-rank 0 --orchestrator ws://THIS-HOST:3030   # on each node\n\n\
    It only introduces the nodes to each other: gradients travel node to node. See the\n\
    README's multi-node section for an sbatch script."
)]
pub struct OrchestratorArgs {
    /// The port to listen on (all interfaces).
    #[arg(long, default_value_t = DEFAULT_ORCHESTRATOR_PORT)]
    port: u16,
}

/// Runs `clintune orchestrator` until interrupted.
pub fn run(a: OrchestratorArgs) -> anyhow::Result<()> {
    tracing::info!("orchestrator listening on port {} (Ctrl-C to stop)", a.port);
    serve_orchestrator(a.port)?;
    tracing::info!("orchestrator stopped");
    Ok(())
}
