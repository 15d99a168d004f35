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
    // Built once, as clap_mangen's own generate_to does, so subcommands are named
    // `spate-hash` and the help subcommand is left out.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    match dir {
        None => write_stdout(&page(&cmd, true).context("rendering the man page")?),
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("{}: cannot create", dir.display()))?;
            write_pages(&cmd, dir, true)
        }
    }
}

/// Writes the page of `cmd` and of each of its subcommands into `dir`.
fn write_pages(cmd: &clap::Command, dir: &Path, top: bool) -> Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, false)?;
    }
    let name = clap_mangen::Man::new(cmd.clone()).get_filename();
    let path = dir.join(&name);
    let roff = page(cmd, top).with_context(|| format!("rendering {name}"))?;
    std::fs::write(&path, roff).with_context(|| format!("{}: cannot write", path.display()))
}

/// One man page: clap_mangen's sections, then the `after_help` text split into EXAMPLES
/// (kept line for line: clap_mangen's EXTRA section would re-flow the commands into one
/// paragraph) and NOTES, and on spate(1) EXIT STATUS and ENVIRONMENT.
fn page(cmd: &clap::Command, top: bool) -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut out)?;
    }
    if let Some(after) = cmd.get_after_help() {
        let (examples, notes) = split_examples(&after.to_string());
        if !examples.is_empty() {
            out.extend_from_slice(b".SH EXAMPLES\n");
            verbatim(&mut out, &examples);
        }
        // spate(1)'s notes say what EXIT STATUS says in full.
        if !top && !notes.trim().is_empty() {
            out.extend_from_slice(b".SH NOTES\n");
            for paragraph in notes.split("\n\n").filter(|p| !p.trim().is_empty()) {
                out.extend_from_slice(b".PP\n");
                for line in paragraph.lines() {
                    out.extend_from_slice(escape(line.trim()).as_bytes());
                    out.push(b'\n');
                }
            }
        }
    }
    if top {
        out.extend_from_slice(EXIT_STATUS.as_bytes());
        out.extend_from_slice(ENVIRONMENT.as_bytes());
    }
    if cmd.get_version().is_some() || cmd.get_long_version().is_some() {
        man.render_version_section(&mut out)?;
    }
    Ok(out)
}

/// The lines of an `Examples:` block (up to the first blank line, without the heading,
/// indentation removed) and the text after it.
fn split_examples(after: &str) -> (Vec<String>, String) {
    let Some(rest) = after.strip_prefix("Examples:\n") else {
        return (Vec::new(), after.to_string());
    };
    let (block, notes) = rest.split_once("\n\n").unwrap_or((rest, ""));
    let lines = block.lines().map(|l| l.trim_start().to_string()).collect();
    (lines, notes.to_string())
}

/// Lines that roff must print as they are: no filling, no adjusting.
fn verbatim(out: &mut Vec<u8>, lines: &[String]) {
    out.extend_from_slice(b".PP\n.nf\n");
    for line in lines {
        out.extend_from_slice(escape(line).as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b".fi\n");
}

/// Text for roff: a backslash is `\e`, a hyphen `\-` (the ASCII one a shell takes, not
/// a typographic hyphen), and a line starting with `.` or `'` is not a request.
fn escape(line: &str) -> String {
    let text = line.replace('\\', "\\e").replace('-', "\\-");
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}")
    } else {
        text
    }
}

/// EXIT STATUS of spate(1): the codes of `cli::main` (`EXIT_OK`, `EXIT_FAILED`,
/// `EXIT_FATAL`) and the signal exits.
const EXIT_STATUS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Every file was hashed, verified, packed or unpacked; every benchmark job ran cleanly.
.TP
\fB1\fR
The run finished, but something failed: a file could not be read, a check found a file
FAILED, MISSING or in ERROR, merge found a conflict or a gap, a benchmark job had I/O
errors.
.TP
\fB2\fR
Usage error or fatal error: a bad option, an output that cannot be written, a manifest or
archive that cannot be read, a refused archive.
.TP
\fB130\fR, \fB143\fR
Interrupted by SIGINT or SIGTERM; unfinished output was removed.
"#;

/// ENVIRONMENT of spate(1): every variable the code reads.
const ENVIRONMENT: &str = r#".SH ENVIRONMENT
.TP
\fBJOB_COMPLETION_INDEX\fR
With \fB\-\-shards\fR N (hash, check): this worker's 0\-based index i, as a Kubernetes
Indexed Job sets it; the worker runs shard i+1 of N. It must be 0 to N\-1.
.TP
\fBSLURM_ARRAY_TASK_ID\fR
The same, when JOB_COMPLETION_INDEX is not set: number the array \fB\-\-array=0\-\fR(N\-1).
.TP
\fBNO_COLOR\fR
When set, \fB\-\-help\fR is printed without bold and underline on a terminal. Nothing
else spate prints has colors.
.TP
\fBSOURCE_DATE_EPOCH\fR
With \fBpack \-\-reproducible\fR and no \fB\-\-mtime\fR: modification times later
than this many seconds since 1970 are stored as it, as GNU tar's
\fB\-\-clamp\-mtime\fR does.
"#;

fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .context("writing to standard output")
}
