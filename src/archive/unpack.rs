//! `spate unpack`: to be written on the unpack branch.

use anyhow::Result;

use super::UnpackConfig;

/// Extracts the archive; `Ok(false)` when some entries failed.
pub fn run(_config: &UnpackConfig) -> Result<bool> {
    anyhow::bail!("unpack is not built yet")
}
