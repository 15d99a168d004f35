//! The JSON rendering of an error, shared by every JSON output that carries one:
//! `error` (the cause in words, as the text line has it) and `error_kind` (the stable
//! name from [`ErrorKind::as_str`], for programs).

use serde_json::{Map, Value};

use crate::error::ErrorKind;

/// Adds `error` and `error_kind` to a job's JSON object.
pub fn push_error(obj: &mut Map<String, Value>, kind: ErrorKind, words: &str) {
    obj.insert("error".into(), Value::from(words));
    obj.insert("error_kind".into(), Value::from(kind.as_str()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_carries_its_stable_kind() {
        let mut obj = Map::new();
        push_error(
            &mut obj,
            ErrorKind::PermissionDenied,
            "opening: Permission denied",
        );
        assert_eq!(obj["error_kind"], "permission_denied");
        assert_eq!(obj["error"], "opening: Permission denied");
    }
}
