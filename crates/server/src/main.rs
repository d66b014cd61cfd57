//! `portcullis`: one binary that serves and administers the machine-authentication platform.
//! Everything but the allocator is the library (`lib.rs`). Exit codes: 0 ok, 1 failure,
//! 2 usage.

use std::process::ExitCode;

/// mimalloc instead of glibc malloc: the token path allocates small short-lived buffers on
/// every request, and glibc's malloc/free/consolidate took ~7.5 % of CPU under load
/// (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    portcullis::run()
}
