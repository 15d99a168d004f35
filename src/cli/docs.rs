//! Shell completions and man pages, generated from the same clap definition that parses
//! the command line, so they can never disagree with it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use clap_complete::Shell;

pub(super) const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  spate completions bash > /etc/bash_completion.d/spate
  spate completions zsh > \"${fpath[1]}/_spate\"
  spate completions fish > ~/.config/fish/completions/spate.fish";

#[derive(Args, Debug)]
pub(super) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub(super) shell: Shell,
}

pub(super) const MAN_EXAMPLES: &str = "\
Examples:
  spate man | man -l -                      # read it now
  spate man --out /usr/local/share/man/man1 # spate.1, spate-hash.1, ...";

#[derive(Args, Debug)]
pub(super) struct ManArgs {
    /// Write spate.1 and one page per subcommand into DIR instead of printing spate.1.
    #[arg(long, value_name = "DIR")]
    pub(super) out: Option<PathBuf>,
}

/// Writes the completion script for `shell` to standard output.
pub(super) fn completions(mut cmd: clap::Command, shell: Shell) -> Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "spate", &mut out);
    write_stdout(&out)
}

/// Writes the man page of `cmd` as roff to standard output, or with `dir`, one page per
/// command (`spate.1`, `spate-hash.1`, ...) into `dir`.
pub(super) fn man(cmd: clap::Command, dir: Option<&Path>) -> Result<()> {
    match dir {
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .context("rendering the man page")?;
            write_stdout(&out)
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("writing man pages to {}", dir.display()))
        }
    }
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .context("writing to standard output")
}
