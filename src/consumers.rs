//! The runtime of the background consumers: one thread at a lower priority than the requests.
//!
//! `startup` spawns the firehose consumers (projections, report aggregation) on it, so a busy
//! consumer never delays a hook answer; they only fall behind and catch up.

/// Nice value of the consumer runtime's thread (0 = normal, 19 = lowest priority), unless the
/// process already runs at a higher one (then the consumers keep the process's).
pub const CONSUMER_NICE: i32 = 10;

/// Owns the consumer runtime and shuts it down without blocking when dropped: dropping a
/// `Runtime` inside async code panics, and `run_until_stopped` may be dropped mid-way (e.g. by a
/// `select!` or `abort()` around it).
pub struct ConsumerRuntime(Option<tokio::runtime::Runtime>);

impl ConsumerRuntime {
    /// Starts the runtime: one thread at nice [`CONSUMER_NICE`].
    pub fn start() -> std::io::Result<Self> {
        Ok(Self(Some(consumer_runtime()?)))
    }

    /// Where the firehose consumers are spawned.
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("present until dropped")
            .handle()
            .clone()
    }
}

impl Drop for ConsumerRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The runtime of the firehose consumers (projections, report aggregation): one thread at nice
/// [`CONSUMER_NICE`]. When the cores are saturated, Linux then runs hook requests first (a nice-10
/// thread gets ~10 % of a core against a nice-0 one) and the consumers catch up when there is
/// room: they only fall behind, and lose nothing while their backlog fits in `firehose.maxlen`.
/// Sharing the request runtime, their parsing and Lua round trips made event hook p99 rise to
/// tens of milliseconds at half the maximum ingest rate on two cores.
fn consumer_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("okta-adapter-consumers")
        .on_thread_start(lower_thread_priority)
        .enable_all()
        .build()
}

/// Sets the calling thread's nice value to [`CONSUMER_NICE`] (Linux keeps it per thread), unless
/// it is already at least that. Failure is logged, not fatal: the consumers then just run at the
/// process's priority.
fn lower_thread_priority() {
    use thread_priority::{set_current_thread_priority, ThreadPriority, ThreadPriorityValue};
    if current_nice().is_some_and(|nice| nice >= CONSUMER_NICE) {
        return;
    }
    // thread-priority maps 0..=99 linearly onto nice 19..=-20 for normal threads: 22 is nice 10
    // (a unit test reads the value back).
    let value = ThreadPriorityValue::try_from(22u8).expect("22 is within 0..=99");
    if let Err(e) = set_current_thread_priority(ThreadPriority::Crossplatform(value)) {
        tracing::warn!(error = ?e, "could not lower the consumer thread's priority");
    }
}

/// The calling thread's nice value (field 19 of /proc/thread-self/stat); `None` where there is
/// no such file.
fn current_nice() -> Option<i32> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let after_name = stat.get(stat.rfind(')')? + 2..)?;
    after_name.split_whitespace().nth(16)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn consumer_threads_run_at_the_consumer_nice_value() {
        let before = current_nice().expect("Linux has /proc/thread-self/stat");
        let runtime = consumer_runtime().unwrap();
        let nice = runtime.block_on(async {
            tokio::spawn(async { current_nice().unwrap() })
                .await
                .unwrap()
        });
        assert_eq!(nice, CONSUMER_NICE.max(before));
        assert_eq!(
            current_nice(),
            Some(before),
            "the calling thread keeps its priority"
        );
    }
}
