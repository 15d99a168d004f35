//! Values with units on the command line: sizes (`--buffer-size 256k`, `--bs 4k`,
//! `--size 8GiB`) and durations (`--runtime 500ms`). A value that is not understood is
//! refused with the units that are, so the fix is in the message.

use std::time::Duration;

/// The size units, as a refusal lists them.
const SIZE_UNITS: &str = "k, M, G, T, KiB, MiB, GiB, TiB (or B)";

/// A size such as `4k`, `256k` or `1MiB` or a number of bytes; zero is refused, as no
/// option takes it. Units are binary, as fio and dd count them: `k` and `KiB` are both
/// 1024 bytes, `1M` and `1MB` both 1 MiB.
pub(super) fn parse_size_arg(s: &str) -> Result<u64, String> {
    let n = parse_size::Config::new()
        .with_binary()
        .parse_size(s)
        .map_err(|e| size_error(s, e))?;
    if n == 0 {
        return Err("must be greater than zero".into());
    }
    Ok(n)
}

/// Why `s` is not a size, in words: parse-size only says "invalid digit found in
/// string", wherever the offending character is.
fn size_error(s: &str, err: parse_size::Error) -> String {
    let s = s.trim();
    let digits = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let unit = unit.trim();
    match err {
        parse_size::Error::PosOverflow => "too large: at most 16 EiB".into(),
        _ if s.is_empty() => {
            format!("empty; give a number of bytes or a size: 4k, 1MiB ({SIZE_UNITS})")
        }
        _ if number.is_empty() || number.parse::<f64>().is_err() => {
            format!("not a number of bytes; give a number, optionally with a unit: {SIZE_UNITS}")
        }
        _ => format!("unknown unit '{unit}'; use {SIZE_UNITS}"),
    }
}

/// The duration units, as a refusal lists them.
const DURATION_UNITS: &str = "us, ms, s, m, h (a bare number is seconds)";

/// A duration as fio's `--runtime` takes it: `500ms`, `1s`, `2m`, `1h`, or a bare
/// number of seconds (`5`, `0.5`). Zero is refused: a job that may not run measures
/// nothing.
pub(super) fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let digits = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("not a duration; give a number with a unit: {DURATION_UNITS}"))?;
    let seconds_per = match unit.trim() {
        "" | "s" | "sec" => 1.0,
        "us" => 1e-6,
        "ms" => 1e-3,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("unknown unit '{other}'; use {DURATION_UNITS}")),
    };
    let seconds = value * seconds_per;
    // Never NaN: the number is digits and dots only.
    if seconds <= 0.0 {
        return Err("must be greater than zero".into());
    }
    // A billion seconds is 31 years: beyond that is a typo, and Duration would overflow
    // further out still.
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| d.as_secs() <= 1_000_000_000)
        .ok_or_else(|| "too long: at most 1000000000 s".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_units_and_name_them_on_error() {
        assert_eq!(parse_size_arg("4k"), Ok(4096));
        assert_eq!(parse_size_arg("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size_arg("8G"), Ok(8 << 30));
        assert_eq!(parse_size_arg("512"), Ok(512));
        let err = parse_size_arg("256X").unwrap_err();
        assert_eq!(err, format!("unknown unit 'X'; use {SIZE_UNITS}"));
        assert!(parse_size_arg("k").unwrap_err().contains("not a number"));
        assert!(parse_size_arg("0").is_err());
    }

    #[test]
    fn durations_as_fio_takes_them() {
        assert_eq!(parse_duration_arg("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration_arg("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration_arg("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration_arg("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration_arg("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration_arg("0.5"), Ok(Duration::from_millis(500)));
        assert!(
            parse_duration_arg("3d")
                .unwrap_err()
                .contains("unknown unit 'd'")
        );
        for bad in ["0", "0ms", "", "s", "-1", "1e99"] {
            assert!(parse_duration_arg(bad).is_err(), "{bad}");
        }
    }
}
