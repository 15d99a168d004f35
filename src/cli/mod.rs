//! Command-line interface: parses arguments into job configurations and maps the result
//! to an exit code. Exit codes: 0 all good, 1 some file failed, 2 usage or fatal error,
//! 130/143 interrupted by SIGINT/SIGTERM.
//!
//! Two stages, as in ripgrep: clap parses the command line into `*Args` structs, and
//! each one's `config()` validates them into the config struct its job takes (jobs never
//! see clap). This file holds the command table and the dispatch; one file per job
//! family holds its arguments (`hash.rs` with `merge`, `check.rs`, `archive.rs` for pack,
//! unpack and list, `bench.rs`, `docs.rs` for completions and man pages), `shared.rs`
//! the walk, read and shard options several commands take, and `units.rs` sizes and
//! durations.

mod archive;
mod bench;
mod check;
mod docs;
mod hash;
mod shared;
mod units;

use std::ffi::OsString;
use std::io::Write;
use std::sync::Arc;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};

use crate::output::Cleanup;

/// Exit code: everything succeeded.
pub(crate) const EXIT_OK: i32 = 0;
/// Exit code: the run finished, but some files failed.
pub(crate) const EXIT_FAILED: i32 = 1;
/// Exit code: bad usage or a fatal error.
pub(crate) const EXIT_FATAL: i32 = 2;

/// `spate --help`'s examples: one line per job, each runnable as written.
const TOP_EXAMPLES: &str = "\
Examples:
  spate hash /usr/share/doc > doc.b3             # BLAKE3 manifest; b3sum -c doc.b3 checks it
  spate check doc.b3                             # verify it: OK / FAILED / MISSING per file
  spate pack -o doc.tar.zst /usr/share/doc       # tar + zstd; GNU tar -xf reads it too
  spate unpack doc.tar.zst -C restore/           # extract, refusing names that leave restore/
  spate hash --shard 1/4 -o part-1.b3 tree       # worker 1 of 4; spate merge joins the parts
  spate bench /mnt/data                          # disk throughput, CrystalDiskMark's preset

Exit status: 0 all good, 1 some file failed, 2 usage or fatal error, 130/143 interrupted.
'spate COMMAND --help' describes each command; 'spate man | man -l -' the whole manual.";

#[derive(Parser, Debug)]
#[command(
    name = "spate",
    version,
    about = "Push whole directory trees through fast async file I/O: checksum, archive, benchmark.",
    after_help = TOP_EXAMPLES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Hash files and directory trees; print a manifest b3sum/sha256sum can check.
    #[command(after_help = hash::HASH_EXAMPLES)]
    Hash(hash::HashArgs),
    /// Verify files against manifests from spate, b3sum or sha256sum and friends, or an
    /// archive against its own table of contents.
    #[command(after_help = check::CHECK_EXAMPLES)]
    Check(check::CheckArgs),
    /// Pack files and trees into a tar archive, compressed by the output's extension.
    #[command(after_help = archive::PACK_EXAMPLES)]
    Pack(archive::PackArgs),
    /// Extract an archive (any compression, found from its first bytes) safely beneath DIR.
    #[command(after_help = archive::UNPACK_EXAMPLES)]
    Unpack(archive::UnpackArgs),
    /// List an archive's entries, like `tar -tv`.
    #[command(after_help = archive::LIST_EXAMPLES)]
    List(archive::ListArgs),
    /// Merge shard manifests into one, in walk order (refusing conflicting digests), or
    /// shard archives into one indexed archive.
    #[command(after_help = hash::MERGE_EXAMPLES)]
    Merge(hash::MergeArgs),
    /// Print a shell completion script.
    #[command(after_help = docs::COMPLETIONS_EXAMPLES)]
    Completions(docs::CompletionsArgs),
    /// Print the man page (roff), or write one per subcommand into a directory.
    #[command(after_help = docs::MAN_EXAMPLES)]
    Man(docs::ManArgs),
    /// Measure disk throughput on a test file of its own (like fio or CrystalDiskMark),
    /// or how fast an existing tree reads.
    #[command(after_help = bench::BENCH_EXAMPLES)]
    Bench(bench::BenchArgs),
}

/// `spate list ...` and `spate unpack ...` parsed against their own arguments alone,
/// or `None` to parse the whole command line as usual.
///
/// Building clap's whole command (every subcommand, every argument) takes 0.6 ms,
/// which is a tenth of listing a 20,000-member archive from its table or of taking
/// one member out of it. The top level has no options of its own, so whatever follows
/// the subcommand's name means the same to both parsers. Anything this parse refuses
/// (`--help`, a mistake) goes to the whole command, so help and errors read as before.
fn quick_parse(args: &[OsString]) -> Option<Cli> {
    let command = match args.get(1)?.to_str()? {
        "list" => Command::List(parse_alone("list", args)?),
        "unpack" => Command::Unpack(parse_alone("unpack", args)?),
        _ => return None,
    };
    Some(Cli { command })
}

/// The subcommand `name`'s arguments `T`, parsed from what follows its name in `args`.
fn parse_alone<T: clap::Args + clap::FromArgMatches>(
    name: &'static str,
    args: &[OsString],
) -> Option<T> {
    let matches = T::augment_args(clap::Command::new(name))
        .try_get_matches_from(args.get(1..)?)
        .ok()?;
    T::from_arg_matches(&matches).ok()
}

/// Parses the command line, runs the job and returns the process exit code.
pub fn main() -> i32 {
    // Die quietly on a closed pipe (`spate hash DIR | head -1`), as coreutils do. And
    // turn an exceeded file-size limit into an EFBIG write error instead of a kill, so
    // the temporary output is removed like after any other write failure.
    // SAFETY: setting signal dispositions at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = match quick_parse(&args).map_or_else(|| Cli::try_parse_from(&args), Ok) {
        Ok(cli) => cli,
        Err(err) if err.use_stderr() => {
            let _ = writeln!(std::io::stderr(), "spate: {}", usage_error_line(&err));
            return EXIT_FATAL;
        }
        Err(help_or_version) => {
            let _ = help_or_version.print();
            return EXIT_OK;
        }
    };
    let cleanup = Arc::new(Cleanup::default());
    match run(cli, &cleanup) {
        Ok(true) => EXIT_OK,
        Ok(false) => EXIT_FAILED,
        Err(err) => {
            let _ = writeln!(
                std::io::stderr(),
                "spate: {}",
                crate::error::describe_chain(&err)
            );
            EXIT_FATAL
        }
    }
}

/// A usage error on one line, as every other error is: clap spreads it over a block
/// with the usage and a "For more information" line, and starts it with `error:`. Its
/// own continuation lines (the missing arguments, a `tip:`) are kept.
fn usage_error_line(err: &clap::Error) -> String {
    // Display of a rendered error is its plain text, without colors.
    let text = err.render().to_string();
    let mut line = String::new();
    for part in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if part.starts_with("Usage:") || part.starts_with("For more information") {
            break;
        }
        let part = part.strip_prefix("error: ").unwrap_or(part);
        if !line.is_empty() {
            // "... were not provided:" / "[possible values: ...]" continue the sentence.
            let joined = line.ends_with(':') || part.starts_with('[');
            line.push_str(if joined { " " } else { "; " });
        }
        line.push_str(part);
    }
    line
}

fn run(cli: Cli, cleanup: &Arc<Cleanup>) -> Result<bool> {
    // A listing writes no file, so an interrupt has nothing to remove and the default
    // action (the process ends, the shell says 130 or 143) is right; a thread started
    // for it would be a tenth of a millisecond of `spate list`'s few.
    if !matches!(cli.command, Command::List(_)) {
        crate::signals::handle_signals(Arc::clone(cleanup))?;
    }
    // The modules of this folder are named after the jobs they configure: the jobs
    // themselves are spelled `crate::`.
    match cli.command {
        Command::Hash(args) if args.checks() => crate::check::run(&args.check_config()?, cleanup),
        Command::Hash(args) => crate::hash::run(&args.config()?, cleanup),
        Command::Check(args) => crate::check::run(&args.config()?, cleanup),
        Command::Pack(args) => crate::archive::pack::run(&args.config()?, cleanup),
        Command::Unpack(args) => crate::archive::unpack::run(&args.config(), cleanup),
        Command::List(args) => crate::archive::list::run(&args.config()),
        Command::Merge(args) => crate::merge::run(&args.config(), cleanup),
        Command::Completions(args) => docs::completions(Cli::command(), args.shell).map(|()| true),
        Command::Man(args) => docs::man(Cli::command(), args.out.as_deref()).map(|()| true),
        Command::Bench(args) => crate::bench::run(&args.config()?, cleanup),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quick parse of `list` and `unpack` gives what the whole command gives, and
    /// leaves to it whatever it does not accept.
    #[test]
    fn quick_parse_agrees_with_the_whole_command() {
        let lines = [
            "spate list a.tar.zst",
            "spate list --json a.tar.zst m1 'd/*'",
            "spate list a.tar.zst --progress never",
            "spate list -- -a.tar",
            "spate unpack a.tar.zst -C out",
            "spate unpack -O a.tar.zst some/member",
            "spate unpack a.tar.zst --overwrite --writers 2 -C out x y",
            "spate unpack --keep-old-files a.tar.zst",
            "spate list",
            "spate list --help",
            "spate list --version",
            "spate list --bogus a.tar",
            "spate unpack -h",
            "spate unpack --writers lots a.tar",
            "spate hash .",
            "spate listing a.tar",
        ];
        for line in lines {
            let args: Vec<OsString> = line.split(' ').map(OsString::from).collect();
            let whole = Cli::try_parse_from(&args);
            match quick_parse(&args) {
                Some(quick) => {
                    let whole = whole.unwrap_or_else(|e| panic!("{line}: {e}"));
                    assert_eq!(format!("{quick:?}"), format!("{whole:?}"), "{line}");
                }
                // Refused here: either the whole command refuses it too, or it is not
                // one of the two subcommands.
                None => assert!(
                    whole.is_err() || !matches!(args[1].to_str(), Some("list" | "unpack")),
                    "{line}: the quick parse refused what the whole command takes"
                ),
            }
        }
    }
}
