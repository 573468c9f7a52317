//! The figures of docs/PERFORMANCE.md: the release binary, driven as a user drives it,
//! against a fast fake provider on 127.0.0.1.
//!
//! Run with `cargo bench --bench figures` (cargo builds the release binary first). It
//! prints a table and writes `<target dir>/bench/figures.json`. Environment:
//!
//! - `PIZAUTH_BENCH_QUICK=1`: small counts, for development (the figures are not
//!   comparable with the targets).
//! - `PIZAUTH_BENCH_ONLY=latency,throughput,idle,footprint,storm,startup,size,core`: run only
//!   these parts (figures of the others are left out).
//! - `PIZAUTH_BENCH_BIN=path`: measure this binary instead of the one cargo built.
//!
//! Every loop is bounded in count and in time; every socket is on 127.0.0.1 or in a
//! private temporary directory.
//!
//! It measures through `/proc` (memory, threads, CPU, context switches), so it runs on
//! Linux only; elsewhere it says so and measures nothing.

#[cfg(target_os = "linux")]
#[path = "../../fsm/benches/core.rs"]
mod core_bench;
#[cfg(target_os = "linux")]
mod daemon;
#[cfg(target_os = "linux")]
mod figures;
#[cfg(target_os = "linux")]
mod floor;
#[cfg(target_os = "linux")]
mod provider;

fn main() {
    #[cfg(target_os = "linux")]
    figures::main();
    #[cfg(not(target_os = "linux"))]
    eprintln!("the figures bench reads /proc, so it runs on Linux only: nothing measured");
}
