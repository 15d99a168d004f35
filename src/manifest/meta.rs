//! The metadata a JSON manifest keeps per file, so a later run can tell an unchanged
//! file without reading it (`spate hash --update`) and, in `check`, an edit from
//! bitrot. Field names and meanings are stable (see the README's field table).

use serde_json::{Map, Value};

/// What was known about a file when its digest was computed. Times are nanoseconds
/// since the Unix epoch (negative before 1970), as `stat` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileMeta {
    /// `mtime_ns`: modification time.
    pub mtime_ns: i64,
    /// `ctime_ns`: status change time.
    pub ctime_ns: i64,
    /// `inode`: inode number.
    pub inode: u64,
    /// `dev`: the device number of the file system (`st_dev`).
    pub dev: u64,
    /// `hashed_ns`: when the file's bytes were last read to compute the digest (not
    /// when the manifest was written: a digest reused by `--update` keeps its time).
    /// `None` when a manifest from elsewhere does not say.
    pub hashed_ns: Option<i64>,
}

/// Seconds and nanoseconds, as `stat` gives them, as nanoseconds since the epoch.
/// Saturates (beyond the years 1677 and 2262), which no real timestamp reaches.
pub fn nanos((secs, nanos): (i64, i64)) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

impl FileMeta {
    /// Adds the fields to a JSON object (as the JSON writer does, for the tests).
    #[cfg(test)]
    pub fn insert_into(&self, obj: &mut Map<String, Value>) {
        obj.insert("mtime_ns".into(), Value::from(self.mtime_ns));
        obj.insert("ctime_ns".into(), Value::from(self.ctime_ns));
        obj.insert("inode".into(), Value::from(self.inode));
        obj.insert("dev".into(), Value::from(self.dev));
        if let Some(hashed) = self.hashed_ns {
            obj.insert("hashed_ns".into(), Value::from(hashed));
        }
    }

    /// The fields of a JSON object. `Ok(None)` when it has none of them (a manifest
    /// written before they existed); `Err` when some are there but not all, or are not
    /// whole numbers in range.
    pub fn from_json(obj: &Map<String, Value>) -> Result<Option<FileMeta>, String> {
        const REQUIRED: [&str; 4] = ["mtime_ns", "ctime_ns", "inode", "dev"];
        if REQUIRED.iter().all(|k| !obj.contains_key(*k)) {
            return Ok(None);
        }
        let signed = |key: &str| -> Result<i64, String> {
            match obj.get(key) {
                None => Err(format!("no \"{key}\"")),
                Some(v) => v
                    .as_i64()
                    .ok_or_else(|| format!("\"{key}\" is not a whole number")),
            }
        };
        let unsigned = |key: &str| -> Result<u64, String> {
            match obj.get(key) {
                None => Err(format!("no \"{key}\"")),
                Some(v) => v
                    .as_u64()
                    .ok_or_else(|| format!("\"{key}\" is not a whole number")),
            }
        };
        let hashed_ns = match obj.get("hashed_ns") {
            None => None,
            Some(_) => Some(signed("hashed_ns")?),
        };
        Ok(Some(FileMeta {
            mtime_ns: signed("mtime_ns")?,
            ctime_ns: signed("ctime_ns")?,
            inode: unsigned("inode")?,
            dev: unsigned("dev")?,
            hashed_ns,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_through_json() {
        let meta = FileMeta {
            mtime_ns: -1_500_000_000,
            ctime_ns: 1_700_000_000_123_456_789,
            inode: u64::MAX,
            dev: 2049,
            hashed_ns: Some(1_700_000_001_000_000_000),
        };
        let mut obj = Map::new();
        meta.insert_into(&mut obj);
        assert_eq!(FileMeta::from_json(&obj), Ok(Some(meta)));
        obj.remove("hashed_ns");
        let read = FileMeta::from_json(&obj).unwrap().unwrap();
        assert_eq!(read.hashed_ns, None);
        obj.remove("dev");
        assert!(FileMeta::from_json(&obj).is_err(), "some fields, not all");
        assert_eq!(FileMeta::from_json(&Map::new()), Ok(None));
    }

    #[test]
    fn nanoseconds_from_stat_pairs() {
        assert_eq!(nanos((1, 5)), 1_000_000_005);
        assert_eq!(nanos((-2, 500_000_000)), -1_500_000_000);
        assert_eq!(nanos((i64::MAX, 0)), i64::MAX);
    }
}
