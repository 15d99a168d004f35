//! `spate list`: to be written on the unpack branch.

use anyhow::Result;

use super::ListConfig;

/// Lists the archive's entries.
pub fn run(_config: &ListConfig) -> Result<bool> {
    anyhow::bail!("list is not built yet")
}
