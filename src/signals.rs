//! SIGINT and SIGTERM: a thread of their own removes the run's temporary output files
//! (those registered in [`Cleanup`]) and exits as a shell expects of an interrupted
//! program, 130 or 143, so no half-written file is left behind.

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::output::Cleanup;

/// Exit status for a signal, as shells report it: 130 for SIGINT, 143 for SIGTERM.
pub fn signal_exit_code(signal: i32) -> i32 {
    128 + signal
}

/// Starts a thread that, on SIGINT or SIGTERM, deletes registered temporary files and
/// exits with 130 or 143.
pub fn handle_signals(cleanup: Arc<Cleanup>) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("installing signal handlers")?;
    std::thread::Builder::new()
        .name("spate-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                cleanup.remove_all();
                std::process::exit(signal_exit_code(signal));
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}
