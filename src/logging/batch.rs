//! `serve`'s log writer: records gather in one buffer, and a writer thread writes what has
//! gathered in one `write`, a few milliseconds after the first of them arrived.
//!
//! tracing-appender's non-blocking writer, used here before, hands each record to its thread
//! through a channel, and that thread wakes for every record it finds waiting alone: at tens of
//! thousands of messages a second it was a fifth of `serve`'s CPU, most of it spent parking,
//! waking and yielding, and it took the cores from the connections. Here a record is a lock and
//! a copy; the thread is woken once per batch, by the record that finds the buffer empty.
//!
//! Nothing is dropped: when [`MAX_WAITING_BYTES`] are waiting (stdout is not being read), a
//! record waits for room. Dropping the [`Guard`] writes out what is waiting and stops the thread.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the writer lets records gather after the first one arrives: short enough that a
/// record is seen at once by someone reading the log, long enough to write many in one go.
const GATHER: Duration = Duration::from_millis(5);

/// The most that waits to be written before a record waits for room.
pub const MAX_WAITING_BYTES: usize = 4 << 20;

#[derive(Default)]
struct Shared {
    waiting: Mutex<Waiting>,
    /// The writer's: a record arrived in an empty buffer, or the guard is dropped.
    arrived: Condvar,
    /// The records': the writer took what was waiting.
    room: Condvar,
}

#[derive(Default)]
struct Waiting {
    records: Vec<u8>,
    stopping: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        // A panic while the lock was held leaves whole records behind: appending goes on.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writer each record is written through (a [`tracing_subscriber::fmt::MakeWriter`]: the
/// fmt layer writes each record with one `write_all`).
#[derive(Clone)]
pub struct Batched {
    shared: Arc<Shared>,
}

impl Write for &Batched {
    fn write(&mut self, record: &[u8]) -> std::io::Result<usize> {
        let shared = &*self.shared;
        let mut waiting = shared.lock();
        while waiting.records.len() >= MAX_WAITING_BYTES && !waiting.stopping {
            waiting = shared
                .room
                .wait(waiting)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let first = waiting.records.is_empty();
        waiting.records.extend_from_slice(record);
        drop(waiting);
        if first {
            shared.arrived.notify_one();
        }
        Ok(record.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Each record is written through a reference: no count of the buffer's owners to change.
impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Batched {
    type Writer = &'a Batched;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

/// Stops the writer thread when dropped, once it has written everything waiting.
#[must_use = "dropping it stops the log's writer thread"]
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.arrived.notify_one();
        self.shared.room.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A writer whose records `out` receives from a thread named `name`. `None` when the thread
/// cannot be started.
pub fn writer<W: Write + Send + 'static>(out: W, name: &str) -> Option<(Batched, Guard)> {
    let shared = Arc::new(Shared::default());
    let thread = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || write_out(&shared, out))
            .ok()?
    };
    Some((
        Batched {
            shared: shared.clone(),
        },
        Guard {
            shared,
            thread: Some(thread),
        },
    ))
}

fn write_out(shared: &Shared, mut out: impl Write) {
    let mut taken = Vec::new();
    loop {
        let mut waiting = shared.lock();
        while waiting.records.is_empty() && !waiting.stopping {
            waiting = shared
                .arrived
                .wait(waiting)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if !waiting.stopping {
            // Let the records of the next few milliseconds join this one.
            drop(waiting);
            std::thread::sleep(GATHER);
            waiting = shared.lock();
        }
        std::mem::swap(&mut waiting.records, &mut taken);
        let stopping = waiting.stopping;
        drop(waiting);
        shared.room.notify_all();
        if !taken.is_empty() {
            // A log that cannot be written (stdout closed) is not worth stopping the service
            // for; the records are dropped, as they would be by a closed pipe.
            let _ = out.write_all(&taken).and_then(|()| out.flush());
            taken.clear();
        }
        if stopping && shared.lock().records.is_empty() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the writer thread received, and how many writes it took.
    #[derive(Clone, Default)]
    struct Received(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Received {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let mut received = self.0.lock().unwrap();
            received.0.extend_from_slice(bytes);
            received.1 += 1;
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_record_is_written_whole_and_in_order_when_the_guard_is_dropped() {
        let received = Received::default();
        let (writer, guard) = writer(received.clone(), "test-log-writer").unwrap();
        let threads: Vec<_> = (0..4)
            .map(|thread| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for n in 0..5_000 {
                        (&writer)
                            .write_all(format!("{thread} {n}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(guard);
        let (bytes, writes) = received.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        let mut next = [0; 4];
        for line in text.lines() {
            let (thread, n) = line.split_once(' ').unwrap();
            let thread: usize = thread.parse().unwrap();
            assert_eq!(n.parse::<usize>().unwrap(), next[thread], "{line}");
            next[thread] += 1;
        }
        assert_eq!(next, [5_000; 4]);
        assert!(writes < 20_000, "{writes} writes for 20,000 records");
    }

    #[test]
    fn a_record_is_written_without_waiting_for_others() {
        let received = Received::default();
        let (writer, _guard) = writer(received.clone(), "test-log-writer").unwrap();
        // Each is written by the thread on its own: no flush, no drop. The second arrives when
        // the thread, having written the first, waits for records again. (The bound only keeps
        // a broken writer from hanging the suite.)
        let began = std::time::Instant::now();
        for (record, expected) in [
            (&b"first\n"[..], &b"first\n"[..]),
            (b"second\n", b"first\nsecond\n"),
        ] {
            (&writer).write_all(record).unwrap();
            while received.0.lock().unwrap().0 != expected {
                assert!(began.elapsed() < Duration::from_secs(60), "never written");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// An `out` that blocks until released: stdout that nobody reads.
    struct Stalled(Arc<(Mutex<bool>, Condvar)>, Received);

    impl Write for Stalled {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let (released, changed) = &*self.0;
            let mut released = released.lock().unwrap();
            while !*released {
                released = changed.wait(released).unwrap();
            }
            self.1.write(bytes)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Releases a stalled `out` when dropped, so that a failed assertion does not leave the
    /// guard's drop waiting for the writer thread forever.
    struct Release(Arc<(Mutex<bool>, Condvar)>);

    impl Drop for Release {
        fn drop(&mut self) {
            *self.0.0.lock().unwrap_or_else(PoisonError::into_inner) = true;
            self.0.1.notify_all();
        }
    }

    #[test]
    fn records_wait_for_room_rather_than_being_dropped() {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let received = Received::default();
        let (writer, guard) =
            writer(Stalled(gate.clone(), received.clone()), "test-log-writer").unwrap();
        let release = Release(gate.clone());
        let record = vec![b'x'; 64 * 1024];
        let total = 3 * MAX_WAITING_BYTES / record.len();
        let written = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let producer = {
            let (writer, record, written) = (writer.clone(), record.clone(), written.clone());
            std::thread::spawn(move || {
                for _ in 0..total {
                    (&writer).write_all(&record).unwrap();
                    written.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            })
        };
        // The writer holds one batch (blocked in `out`); at most MAX_WAITING_BYTES more wait,
        // so the producer stops short of the end until `out` is released: it is seen waiting
        // (no record accepted for a while) with the buffer full.
        let bound = 2 * MAX_WAITING_BYTES / record.len() + 1;
        let (mut last, mut unchanged) = (0, 0);
        while unchanged < 100 || !shared_full(&writer) {
            let now = written.load(std::sync::atomic::Ordering::SeqCst);
            assert!(now <= bound, "{now} records accepted with stdout stalled");
            unchanged = if now == last { unchanged + 1 } else { 0 };
            last = now;
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(written.load(std::sync::atomic::Ordering::SeqCst) < total);
        drop(release);
        producer.join().unwrap();
        drop(guard);
        assert_eq!(received.0.lock().unwrap().0.len(), total * record.len());
    }

    fn shared_full(writer: &Batched) -> bool {
        writer.shared.lock().records.len() >= MAX_WAITING_BYTES
    }
}
