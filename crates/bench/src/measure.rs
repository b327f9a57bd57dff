//! Wall-clock timing on fixed-size thread pools, CPU time per call, medians, and the peak memory of a child
//! process.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::BenchError;

/// Runs `f` on a rayon pool of `threads` workers and returns its result with its wall time in
/// seconds.
pub(crate) fn timed_in_pool<T: Send>(
    threads: usize,
    f: impl FnOnce() -> T + Send,
) -> Result<(T, f64), BenchError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| BenchError::Other(format!("cannot start {threads} worker threads: {e}")))?;
    Ok(pool.install(|| {
        let start = Instant::now();
        let out = f();
        (out, start.elapsed().as_secs_f64())
    }))
}

/// Calls `f` until the calls have used at least `min_seconds` of this thread's CPU time (wall
/// time where `/proc/thread-self/schedstat` is missing) and returns the last result with the
/// seconds per call. CPU time keeps the figures meaningful on a machine shared with other jobs;
/// the thread's clock advances in scheduler ticks (4 ms here), so a single short call cannot be
/// timed.
pub(crate) fn cpu_seconds_per_call<T>(min_seconds: f64, mut f: impl FnMut() -> T) -> (T, f64) {
    let wall = Instant::now();
    let thread_seconds = || {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
            .map(|ns| ns * 1e-9)
    };
    let start = thread_seconds();
    let spent = || match (start, thread_seconds()) {
        (Some(a), Some(b)) => b - a,
        _ => wall.elapsed().as_secs_f64(),
    };
    let mut calls = 0u32;
    loop {
        let out = f();
        calls += 1;
        let seconds = spent();
        if seconds >= min_seconds {
            return (out, seconds / f64::from(calls));
        }
    }
}

/// The median of `values` (the mean of the middle two for an even count; 0 when empty).
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Runs `exe args...` to completion and returns its peak resident set size in MB (10^6 bytes),
/// as the kernel accounts it for that one child (`wait4`'s `ru_maxrss`). The standard
/// library's `Child::wait` does not return resource usage, hence the direct call.
pub(crate) fn peak_rss_mb(exe: &Path, args: &[OsString]) -> Result<f64, BenchError> {
    let command = format!(
        "{} {}",
        exe.display(),
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| BenchError::Child {
            command: command.clone(),
            message: e.to_string(),
        })?;
    let pid = libc::pid_t::try_from(child.id()).map_err(|_| BenchError::Child {
        command: command.clone(),
        message: "process id out of range".to_string(),
    })?;
    let (status, usage) = wait_with_usage(pid).map_err(|e| BenchError::Child {
        command: command.clone(),
        message: format!("wait4: {e}"),
    })?;
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(BenchError::Child {
            command,
            message: format!("failed (wait status {status})"),
        });
    }
    // Linux reports ru_maxrss in KiB.
    Ok(usage.ru_maxrss as f64 * 1024.0 / 1e6)
}

/// Waits for the child `pid` and returns its wait status and resource usage.
fn wait_with_usage(pid: libc::pid_t) -> std::io::Result<(i32, libc::rusage)> {
    let mut status: i32 = 0;
    // SAFETY: `rusage` is a plain C struct of integers, for which all-zero bytes are valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is a child this process spawned and has not waited for; `status` and
        // `usage` are valid, exclusively borrowed locations for the kernel to write.
        let result = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if result == pid {
            return Ok((status, usage));
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), 0.0);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn peak_memory_of_a_child_is_positive_and_failures_are_errors() {
        let sh = Path::new("/bin/sh");
        if !sh.exists() {
            eprintln!("skipped: no /bin/sh");
            return;
        }
        let ok = peak_rss_mb(sh, &["-c".into(), "exit 0".into()]).unwrap();
        assert!(ok > 0.0);
        assert!(peak_rss_mb(sh, &["-c".into(), "exit 3".into()]).is_err());
    }
}
