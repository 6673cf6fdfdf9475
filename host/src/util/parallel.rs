//! The one work-sharing loop behind the host's thread pools (sandbox runs,
//! evaluation episodes, benchmarks): `jobs` threads each take the next
//! index until none is left.

use std::sync::atomic::{AtomicUsize, Ordering};

/// `f(i)` for every `i` in `0..n` on `jobs` threads; results in index order.
pub fn map_indexed<T: Send>(n: usize, jobs: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, T)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs.max(1).min(n.max(1)))
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break mine;
                        }
                        mine.push((i, f(i)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, t)| t).collect()
}

#[cfg(test)]
mod tests {
    use super::map_indexed;

    #[test]
    fn every_index_once_in_order() {
        for jobs in [1, 3, 16] {
            assert_eq!(
                map_indexed(10, jobs, |i| i * i),
                (0..10).map(|i| i * i).collect::<Vec<_>>()
            );
        }
        assert!(map_indexed(0, 4, |i| i).is_empty());
    }
}
