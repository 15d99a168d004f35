//! Finds out, once per run, whether io_uring can be used here.
//!
//! `tokio_uring::start` panics when a ring cannot be set up, so we ask first with a tiny
//! ring of our own: an old kernel answers ENOSYS, a seccomp filter (many container
//! runtimes) or `kernel.io_uring_disabled=2` answers EPERM, and `io_uring_disabled=1`
//! answers EPERM for processes outside the allowed group. A kernel that has io_uring but
//! lacks an opcode the backend needs is treated as unavailable too.

use io_uring::{IoUring, Probe, opcode};

/// Environment variable that makes the probe fail, so the fallback path can be tested
/// on a machine where io_uring works.
pub const DISABLE_ENV: &str = "SPATE_DISABLE_IO_URING";

/// `Ok` when io_uring can run the operations the uring backend uses; otherwise a short
/// reason for the user.
pub fn probe() -> Result<(), String> {
    if std::env::var_os(DISABLE_ENV).is_some_and(|v| !v.is_empty() && v != "0") {
        return Err(format!("disabled by {DISABLE_ENV}"));
    }
    let ring = IoUring::new(8).map_err(|err| match err.raw_os_error() {
        Some(libc::ENOSYS) => "the kernel does not support it (ENOSYS)".to_string(),
        Some(libc::EPERM) => {
            "not permitted (seccomp filter or kernel.io_uring_disabled) (EPERM)".to_string()
        }
        _ => format!(
            "setting up a ring failed: {}",
            crate::error::describe_io(&err)
        ),
    })?;
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe).map_err(|err| {
        format!(
            "probing opcodes failed: {}",
            crate::error::describe_io(&err)
        )
    })?;
    let needed = [
        (opcode::OpenAt::CODE, "openat"),
        (opcode::Read::CODE, "read"),
        (opcode::Write::CODE, "write"),
        (opcode::Statx::CODE, "statx"),
        (opcode::Close::CODE, "close"),
    ];
    for (code, name) in needed {
        if !probe.is_supported(code) {
            return Err(format!("the kernel's io_uring lacks the {name} operation"));
        }
    }
    Ok(())
}
