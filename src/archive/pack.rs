//! `spate pack`: being written.

use std::sync::Arc;

use anyhow::Result;

use super::PackConfig;
use crate::output::Cleanup;

/// Packs the tree; `Ok(false)` when some files failed.
pub fn run(_config: &PackConfig, _cleanup: &Arc<Cleanup>) -> Result<bool> {
    anyhow::bail!("pack is not built yet")
}
