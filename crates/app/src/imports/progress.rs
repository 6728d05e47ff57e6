//! How far a running import got, for the job's view while it runs.

use std::sync::atomic::{AtomicU64, Ordering};

/// How far a running import got: units of work done of `rows × passes`.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    done: AtomicU64,
    rows: AtomicU64,
    passes: AtomicU64,
}

impl Progress {
    pub fn advance(&self, rows: u64) {
        self.done.fetch_add(rows, Ordering::Relaxed);
    }

    pub fn start(&self, rows: u64, passes: u64) {
        self.rows.store(rows, Ordering::Relaxed);
        self.passes.store(passes, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
    }

    /// (rows through the current pass, percent).
    pub fn read(&self) -> (i64, u8) {
        let (done, rows, passes) = (
            self.done.load(Ordering::Relaxed),
            self.rows.load(Ordering::Relaxed),
            self.passes.load(Ordering::Relaxed).max(1),
        );
        let total = (rows * passes).max(1);
        let percent = (done.min(total) * 100 / total).min(99);
        (
            i64::try_from((done / passes).min(rows)).unwrap_or(i64::MAX),
            u8::try_from(percent).unwrap_or(99),
        )
    }
}
