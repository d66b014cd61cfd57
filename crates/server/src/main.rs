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
    without_transparent_huge_pages();
    portcullis::run()
}

/// No transparent huge pages for this process (`prctl(PR_SET_THP_DISABLE)`, what
/// `MIMALLOC_ALLOW_THP=0` does, which mimalloc reads only from the environment). mimalloc
/// asks for huge pages on its arenas (`MADV_HUGEPAGE`), and then a fresh page's first touch
/// zeroes 2 MiB and handing a freed range back splits a huge page with a TLB shootdown on
/// every core. Under the gateway's MQTT load that came back every second or two as a stall of
/// 10-80 ms during which acknowledgements waited with the CPUs half idle (docs/benchmarks.md,
/// issue #12). Failing changes only speed, so a failure is ignored.
fn without_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
}
