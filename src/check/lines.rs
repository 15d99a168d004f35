//! Reading a manifest one line at a time, in bounded memory.

use std::io::{self, BufRead, Read};

use crate::manifest::parse::MAX_LINE;

pub(super) enum LineRead {
    Line,
    TooLong,
    Eof,
}

/// Reads one line (without its `\n`) into `line`, never holding more than
/// [`MAX_LINE`] bytes of it: a manifest with no newline in a gigabyte is malformed, not
/// a reason to run out of memory.
pub(super) fn read_line(reader: &mut dyn BufRead, line: &mut Vec<u8>) -> io::Result<LineRead> {
    line.clear();
    let limit = MAX_LINE as u64 + 2;
    let n = reader.take(limit).read_until(b'\n', line)?;
    if n == 0 {
        return Ok(LineRead::Eof);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        return Ok(LineRead::Line);
    }
    if (n as u64) < limit {
        return Ok(LineRead::Line); // the last line, without a newline
    }
    // Too long: skip the rest of it.
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                break;
            }
            None => {
                let len = buf.len();
                reader.consume(len);
            }
        }
    }
    Ok(LineRead::TooLong)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_and_skipped() {
        let mut data = vec![b'a'; MAX_LINE * 3];
        data.extend_from_slice(b"\nnext\nlast");
        let mut reader = io::Cursor::new(data);
        let mut line = Vec::new();
        assert!(matches!(
            read_line(&mut reader, &mut line).unwrap(),
            LineRead::TooLong
        ));
        assert!(matches!(
            read_line(&mut reader, &mut line).unwrap(),
            LineRead::Line
        ));
        assert_eq!(line, b"next");
        assert!(matches!(
            read_line(&mut reader, &mut line).unwrap(),
            LineRead::Line
        ));
        assert_eq!(line, b"last");
        assert!(matches!(
            read_line(&mut reader, &mut line).unwrap(),
            LineRead::Eof
        ));
    }
}
