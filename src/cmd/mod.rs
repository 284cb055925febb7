//! One module per subcommand.

pub mod deid;
pub mod keygen;
pub mod lineage;
