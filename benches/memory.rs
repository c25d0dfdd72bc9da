//! `cargo bench --bench memory`: peak resident memory of `pc-upgrade upgrade --wait` against the
//! mock (target: at most 20 MiB), read from the kernel's accounting of the finished child
//! (`wait4`'s `ru_maxrss`). Figures: benches/README.md.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;

#[allow(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4 below, which also reports its peak memory"
)]
fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mock = runtime
        .block_on(partner_center_mock::start(
            partner_center_mock::MockConfig {
                polls_to_complete: 5,
                ..Default::default()
            },
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        ))
        .unwrap();
    let mut peaks = Vec::new();
    for _ in 0..5 {
        let customer = uuid::Uuid::new_v4().to_string();
        let child = Command::new(env!("CARGO_BIN_EXE_pc-upgrade"))
            .args([
                "--base-url",
                &mock.url(),
                "upgrade",
                "--customer",
                &customer,
                "--wait",
                "--poll-interval",
                "50ms",
            ])
            .env("PARTNER_CENTER_TOKEN", mock.token())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut status = 0;
        // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waits for our own child, whose pid is valid and not waited for elsewhere;
        // both out-pointers refer to live, writable locals.
        let waited = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
        assert_eq!(waited, child.id() as libc::pid_t, "wait4 failed");
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "pc-upgrade failed: {status}"
        );
        peaks.push(usage.ru_maxrss as f64 / 1024.0); // KiB on Linux
    }
    peaks.sort_by(f64::total_cmp);
    println!(
        "pc-upgrade upgrade --wait against the mock, peak RSS over 5 runs: min {:.1} MiB, median {:.1} MiB, max {:.1} MiB (target <= 20 MiB)",
        peaks[0], peaks[2], peaks[4]
    );
    assert!(
        peaks[4] <= 20.0,
        "peak RSS {:.1} MiB is over the 20 MiB target",
        peaks[4]
    );
}
