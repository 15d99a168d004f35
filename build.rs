//! Links the `spate` binary as a position-dependent executable on Linux.
//!
//! A position-independent `spate` starts with about 17,000 relocations for the
//! dynamic loader to apply, each writing a page of read-only data that then has to
//! be copied: 0.5 to 1 ms of a 2 ms start (measured with `perf stat spate
//! --version`: 2.97 ms and 195 page faults as PIE, 2.02 ms and 153 faults without).
//! That is a quarter of `spate list` of a 20,000-member archive from its table. The
//! cost: the executable's own code is not at a random address (its libraries, heap
//! and stacks still are).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
