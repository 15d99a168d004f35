//! The text rendering: `spate: PATH: cause`, one line, the cause in words.

use std::io::Write;
use std::path::Path;

/// What every line spate writes on stderr starts with.
pub const PREFIX: &str = "spate: ";

/// What the SIGBUS handler writes (`read/mapped.rs`): a signal handler can only write
/// bytes fixed in advance, so this line is whole at compile time.
pub const SIGBUS_LINE: &str = "spate: a mapped file shrank while it was read and its pages \
                               could not be replaced; stopping\n";

/// The line for a message about `path`.
pub fn about(path: &Path, words: &dyn std::fmt::Display) -> String {
    format!("{PREFIX}{}: {words}", path.display())
}

/// The line for a message about the whole run.
pub fn run_line(words: &dyn std::fmt::Display) -> String {
    format!("{PREFIX}{words}")
}

/// Writes a line about the run straight to stderr, where no reporter is at hand: before
/// a job (and its bar) starts, after it ended, or in a reader thread setting up. A failed
/// write to stderr is ignored: there is nowhere left to report it.
pub fn say_plainly(words: &dyn std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "{}", run_line(words));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_start_with_the_program_name() {
        assert_eq!(about(Path::new("d/x"), &"gone"), "spate: d/x: gone");
        assert_eq!(run_line(&"3 files"), "spate: 3 files");
    }
}
