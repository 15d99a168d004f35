//! The bridge to fio: `--emit-fio` writes the run as a fio job file (so a figure can be
//! checked with fio itself), and fio's `--output-format=json` results are read into
//! the same rows as spate's own (`--fio-json`, `--compare`).

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;

use super::data::Pattern;
use super::job::Rw;
use super::results::{Figures, JobRow, Results};
use super::{FileWork, WriteTreeWork};
use crate::read::BackendKind;

/// The fio job file equivalent to `work` on `backend`: one `[section]` per job, each
/// with `stonewall` so they run one after another as spate's do.
pub fn job_file(work: &FileWork, backend: BackendKind) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "; spate {} bench, as a fio job file: fio THIS_FILE --output-format=json > r.json,\n\
         ; then spate bench --fio-json r.json. fio leaves its test file behind: remove it.",
        env!("CARGO_PKG_VERSION")
    );
    if work.loops > 1 {
        let _ = writeln!(
            out,
            "; --loops {0}: run fio {0} times and keep the best (fio's loops= adds runs up)",
            work.loops
        );
    }
    let file = work.dir.join("spate-fio.test");
    let _ = writeln!(out, "[global]");
    let _ = writeln!(out, "filename={}", file.display());
    let _ = writeln!(out, "size={}", work.size);
    let _ = writeln!(out, "direct={}", u8::from(work.direct));
    // spate drops the file's pages before every read job unless --cached (fio's
    // default invalidate=1), and hints the access pattern (fio's fadvise_hint=1).
    let _ = writeln!(out, "invalidate={}", u8::from(!work.cached));
    // spate draws random offsets with replacement, as fio's norandommap.
    let _ = writeln!(out, "norandommap=1");
    // spate's buffers start on a page. fio page-aligns its buffers only for direct
    // I/O; for buffered jobs they start where malloc put them, 16 bytes past a page,
    // and the kernel's copy to or from such a buffer cost fio twice the CPU of an
    // aligned one here (1 MiB buffered reads at Q8: 1.1-1.4 s against 0.5-0.7 s of
    // CPU per GiB, and 0.7x spate's MB/s). iomem_align makes them start on a page.
    let _ = writeln!(out, "iomem_align=4096");
    if work.direct {
        // spate's buffers are on transparent huge pages (AlignedBuf::in_region), one
        // request per buffer of up to 2 MiB; fio's malloc'd 4 KiB pages are wherever
        // the allocator put them, and its 1 MiB direct requests went out split in two in
        // some runs and whole in others (0.9 to 2.0 GB/s on one file). fio takes huge
        // pages only from the reserved pool.
        let _ = writeln!(
            out,
            "; Buffers on huge pages, as spate's (a buffer of up to 2 MiB is one request\n\
             ; to the device). fio needs {0} reserved first, as root (fio stops with\n\
             ; \"no huge pages available\" otherwise; HugePages_Total in /proc/meminfo):\n\
             ;   echo {0} > /proc/sys/vm/nr_hugepages\n\
             ; Without the next line fio uses malloc'd 4 KiB pages, and its large direct\n\
             ; requests may go out split in two.\n\
             iomem=shmhuge",
            huge_pages_needed(work, backend)
        );
    }
    match work.pattern {
        Pattern::Random => {}
        Pattern::Zero => {
            let _ = writeln!(out, "zero_buffers=1");
        }
        Pattern::Compressible(pct) => {
            let _ = writeln!(out, "buffer_compress_percentage={pct}");
        }
    }
    for spec in &work.jobs {
        let name: String = spec
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let _ = writeln!(out, "\n[{name}]");
        let _ = writeln!(out, "stonewall");
        let _ = writeln!(out, "rw={}", spec.rw.name());
        if spec.rw == Rw::Randrw {
            let _ = writeln!(out, "rwmixread={}", spec.rwmixread);
        }
        let _ = writeln!(out, "bs={}", spec.bs);
        let _ = writeln!(out, "runtime={}", fio_time(spec.runtime));
        match backend {
            BackendKind::Uring => {
                let _ = writeln!(out, "ioengine=io_uring");
                let _ = writeln!(out, "iodepth={}", spec.iodepth);
                let _ = writeln!(out, "numjobs={}", spec.jobs);
                if spec.jobs > 1 {
                    // spate's workers each take their own slice of the file.
                    let slice = work.size / spec.jobs as u64;
                    let _ = writeln!(out, "size={slice}\noffset_increment={slice}");
                    let _ = writeln!(out, "group_reporting=1");
                }
            }
            BackendKind::Threads => {
                // spate's threads engine keeps iodepth blocking threads per worker: fio's
                // psync with that many jobs, each on its own slice.
                let threads = spec.iodepth * spec.jobs;
                let slice = work.size / threads as u64;
                let _ = writeln!(out, "ioengine=psync");
                let _ = writeln!(out, "numjobs={threads}");
                if threads > 1 {
                    let _ = writeln!(out, "size={slice}\noffset_increment={slice}");
                    let _ = writeln!(out, "group_reporting=1");
                }
            }
        }
        if spec.rw.writes() {
            if spec.end_fsync {
                let _ = writeln!(out, "end_fsync=1");
            }
            if spec.fsync_every > 0 {
                let _ = writeln!(out, "fsync={}", spec.fsync_every);
            }
        }
    }
    out
}

/// Huge pages (2 MiB) fio's `iomem=shmhuge` takes for the largest job of `work`: each
/// fio job maps bs × iodepth and its alignment, rounded up to fio's own huge page size
/// (4 MiB unless `hugepage-size` says), and the sections run one after another
/// (`stonewall`). Found with fio 3.33 by the fewest reserved pages each shape ran with:
/// 1M Q8 6, 1M Q1 2, 4k Q32 2, psync 8 × 1M 16, io_uring 2 × 1M Q8 12.
fn huge_pages_needed(work: &FileWork, backend: BackendKind) -> u64 {
    const FIO_HUGE: u64 = 4 << 20;
    let per_section = |spec: &super::job::JobSpec| {
        let (clones, depth) = match backend {
            BackendKind::Uring => (spec.jobs as u64, spec.iodepth as u64),
            BackendKind::Threads => ((spec.iodepth * spec.jobs) as u64, 1),
        };
        clones * 2 * (spec.bs * depth + 8192).div_ceil(FIO_HUGE)
    };
    work.jobs.iter().map(per_section).max().unwrap_or(1)
}

/// The fio job file closest to `--write-tree`: files created when fio opens them, one
/// at a time, each written in full and fsynced when closed, then removed. fio has no
/// fsync of the directory, and its figure is per write, not per file. With `--jobs J`,
/// J clones (`numjobs`), each in a directory of its own (`filename_format`; fio makes
/// it), with its share as `nrfiles` (fio's count is per job, spate's N is the total):
/// where N does not divide evenly, two sections run side by side in one group, the
/// first with one file more per clone, and `group_reporting` sums them as one job.
pub fn write_tree_job_file(work: &WriteTreeWork) -> String {
    let shape = work.shape;
    let jobs = u64::from(work.jobs.max(1));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "; spate {} bench --write-tree {}{}, as a fio job file: fio THIS_FILE\n\
         ; --output-format=json > r.json. Unlike spate, fio does not fsync the directory,\n\
         ; and reports per write (bs), not per file: with filesize <= bs they are the same.",
        env!("CARGO_PKG_VERSION"),
        shape.label(),
        match jobs {
            1 => String::new(),
            n => format!(" --jobs {n}"),
        }
    );
    if jobs > 1 {
        let _ = writeln!(
            out,
            "; fio removes its files (unlink=1) but not the directories it made for its\n\
             ; clones: rmdir them afterwards."
        );
    }
    let name: String = work
        .spec()
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let _ = writeln!(out, "[global]");
    let _ = writeln!(out, "directory={}", work.dir.display());
    let _ = writeln!(out, "ioengine=psync");
    let _ = writeln!(out, "rw=write");
    let _ = writeln!(out, "bs={}", shape.size.min(1 << 20));
    let _ = writeln!(out, "filesize={}", shape.size);
    let _ = writeln!(out, "create_on_open=1");
    let _ = writeln!(out, "openfiles=1");
    let _ = writeln!(out, "file_service_type=sequential");
    let _ = writeln!(out, "fsync_on_close=1");
    let _ = writeln!(out, "unlink=1");
    match work.pattern {
        Pattern::Random => {}
        Pattern::Zero => {
            let _ = writeln!(out, "zero_buffers=1");
        }
        Pattern::Compressible(pct) => {
            let _ = writeln!(out, "buffer_compress_percentage={pct}");
        }
    }
    if jobs > 1 {
        // A directory per clone, as spate's writers have; $jobname keeps the two
        // sections' clones apart ($jobnum counts from 0 in each).
        let _ = writeln!(out, "filename_format=$jobname.$jobnum/$filenum");
        let _ = writeln!(out, "group_reporting=1");
    }
    // (clones, files each): the ones with a file more first, as spate's writers.
    let (each, more) = (shape.files / jobs, shape.files % jobs);
    let sections = [(more, each + 1), (jobs - more, each)];
    for (i, (clones, files)) in sections.into_iter().filter(|s| s.0 > 0).enumerate() {
        let _ = writeln!(out, "\n[{name}{}]", if i == 0 { "" } else { "-rest" });
        let _ = writeln!(out, "numjobs={clones}");
        let _ = writeln!(out, "nrfiles={files}");
        let _ = writeln!(out, "size={}", files.saturating_mul(shape.size));
    }
    out
}

/// A duration as fio takes it: whole seconds, or milliseconds.
fn fio_time(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Whether a JSON document is fio's `--output-format=json`.
pub fn is_fio(doc: &Value) -> bool {
    doc.get("fio version").is_some()
}

/// fio's JSON result as rows: a job's name with `-` read as a space (so the sections
/// `--emit-fio` wrote match spate's names), read and write bandwidth, IOPS and
/// latency (fio's `lat`, which is what spate times; p99 from `clat`'s percentiles).
pub fn results(doc: &Value) -> Results {
    let version = doc["fio version"].as_str().unwrap_or("fio");
    let when = doc["time"].as_str().unwrap_or("");
    let jobs = doc["jobs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|job| JobRow {
            name: job["jobname"].as_str().unwrap_or("?").replace('-', " "),
            read: figures(&job["read"]),
            write: figures(&job["write"]),
            samples: None,
        })
        .collect();
    Results {
        source: format!("{version}, {when}")
            .trim_end_matches(", ")
            .to_string(),
        jobs,
    }
}

fn figures(dir: &Value) -> Option<Figures> {
    let bw = dir["bw_bytes"].as_f64()?;
    if dir["total_ios"].as_u64().unwrap_or(0) == 0 && bw == 0.0 {
        return None;
    }
    Some(Figures {
        mb_s: bw / 1e6,
        iops: dir["iops"].as_f64().unwrap_or(0.0),
        mean_ns: dir["lat_ns"]["mean"].as_f64().unwrap_or(0.0),
        p99_ns: dir["clat_ns"]["percentile"]["99.000000"].as_f64(),
        // fio's percentiles are of clat (completion latency, without the submission).
        curve: {
            let mut curve: Vec<(f64, f64)> = dir["clat_ns"]["percentile"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(p, ns)| Some((p.parse().ok()?, ns.as_f64()?)))
                        .collect()
                })
                .unwrap_or_default();
            curve.sort_by(|a, b| a.0.total_cmp(&b.0));
            curve
        },
    })
}
