//! `serve`'s log writer: each thread gathers its records in a buffer of its own, and a writer
//! thread writes what has gathered in all of them in one `write`, a few milliseconds after the
//! first of them arrived.
//!
//! tracing-appender's non-blocking writer, used here before, hands each record to its thread
//! through a channel, and that thread wakes for every record it finds waiting alone: at tens of
//! thousands of messages a second it was a fifth of `serve`'s CPU, most of it spent parking,
//! waking and yielding, and it took the cores from the connections. Here a record is a copy into
//! the thread's own buffer, under a lock no other record takes (the writer takes it once per
//! batch); the writer is woken once per batch, by the record that finds nothing pending.
//!
//! Order: each record takes a ticket from one counter as it is copied, and the writer puts the
//! buffers' records in ticket order. A connection's messages may be served by different threads
//! one after the other; its records still leave in the order they were made, because a record
//! made after another one was copied has a later ticket. The writer takes the buffers one after
//! the other, so a batch may hold a record whose predecessor, on another thread, arrived just
//! after that thread's buffer was taken: a batch writes only the tickets below the counter as it
//! stood before the buffers were taken (all of which it has), and holds the rest for the next.
//!
//! Nothing is dropped: when [`MAX_WAITING_BYTES`] wait in a thread's buffer (stdout is not being
//! read), that thread's next record waits for room. Dropping the [`Guard`] writes out what is
//! waiting and stops the thread.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use thread_local::ThreadLocal;

/// How long the writer lets records gather after the first one arrives: short enough that a
/// record is seen at once by someone reading the log, long enough to write many in one go.
const GATHER: Duration = Duration::from_millis(5);

/// The most that waits in one thread's buffer before its next record waits for room.
pub const MAX_WAITING_BYTES: usize = 4 << 20;

/// The most room a buffer keeps once written out: a burst's buffers are given back, not kept by
/// every thread that logged in it.
const KEPT_BYTES: usize = 64 << 10;

struct Shared {
    /// One buffer per thread that logs.
    parts: ThreadLocal<Part>,
    /// The next record's ticket.
    tickets: AtomicU64,
    /// A record was copied since the writer last set this to false: the writer has a batch to
    /// write, and has been woken for it.
    pending: AtomicBool,
    stopping: AtomicBool,
    /// The writer thread, woken by the record that sets `pending`.
    writer: OnceLock<Thread>,
}

/// One thread's records, on cache lines of its own: the parts are allocated side by side, and
/// a part written by one core would otherwise slow down its neighbour's.
#[repr(align(128))]
#[derive(Default)]
struct Part {
    waiting: Mutex<Records>,
    /// The thread's: the writer took what was waiting.
    room: Condvar,
}

impl Part {
    fn lock(&self) -> MutexGuard<'_, Records> {
        // A panic while the lock was held leaves whole records behind: appending goes on.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Records one after the other, with where each ends and its ticket.
#[derive(Default)]
struct Records {
    bytes: Vec<u8>,
    ends: Vec<(u64, usize)>,
}

impl Records {
    /// Empties the buffer, keeping at most [`KEPT_BYTES`] of room.
    fn clear(&mut self) {
        self.bytes.clear();
        self.bytes.shrink_to(KEPT_BYTES);
        self.ends.clear();
        self.ends.shrink_to(KEPT_BYTES / 64);
    }

    fn push(&mut self, ticket: u64, record: &[u8]) {
        self.bytes.extend_from_slice(record);
        self.ends.push((ticket, self.bytes.len()));
    }

    /// The record at `index`.
    fn record(&self, index: usize) -> &[u8] {
        let end = |index: usize| self.ends.get(index).map_or(0, |&(_, end)| end);
        let start = index.checked_sub(1).map_or(0, end);
        self.bytes.get(start..end(index)).unwrap_or_default()
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
        let part = shared.parts.get_or_default();
        let mut waiting = part.lock();
        while waiting.bytes.len() >= MAX_WAITING_BYTES && !shared.stopping.load(Ordering::SeqCst) {
            waiting = part
                .room
                .wait(waiting)
                .unwrap_or_else(PoisonError::into_inner);
        }
        // Taken once there is room, so that tickets rise with the records in each buffer, and
        // under the buffer's lock, until the record is in it (which the writer relies on). Any
        // order of the counter's changes is one that agrees with what happened before what.
        let ticket = shared.tickets.fetch_add(1, Ordering::Relaxed);
        waiting.push(ticket, record);
        drop(waiting);
        // Read after the copy: a writer that cleared the flag before taking this buffer has
        // either taken the record already, or left the flag for this record to set again.
        if !shared.pending.load(Ordering::SeqCst)
            && !shared.pending.swap(true, Ordering::SeqCst)
            && let Some(writer) = shared.writer.get()
        {
            writer.unpark();
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
        self.shared.stopping.store(true, Ordering::SeqCst);
        for part in self.shared.parts.iter() {
            // Under the lock: a record that found its buffer full either saw `stopping`, or is
            // already waiting for the notification.
            drop(part.lock());
            part.room.notify_all();
        }
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// A writer whose records `out` receives from a thread named `name`. `None` when the thread
/// cannot be started.
pub fn writer<W: Write + Send + 'static>(out: W, name: &str) -> Option<(Batched, Guard)> {
    let shared = Arc::new(Shared {
        parts: ThreadLocal::new(),
        tickets: AtomicU64::new(0),
        pending: AtomicBool::new(false),
        stopping: AtomicBool::new(false),
        writer: OnceLock::new(),
    });
    let thread = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || write_out(&shared, out))
            .ok()?
    };
    let _ = shared.writer.set(thread.thread().clone());
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
    // Emptied buffers, swapped in for full ones; the buffers taken; the records written; those
    // taken but held back for the next batch, in ticket order.
    let (mut spare, mut taken, mut merged) = (Vec::<Records>::new(), Vec::new(), Vec::new());
    // What the last batch held back, and an emptied buffer for what this one holds back.
    let (mut held, mut holding) = (Records::default(), Records::default());
    loop {
        while held.ends.is_empty()
            && !shared.pending.load(Ordering::SeqCst)
            && !shared.stopping.load(Ordering::SeqCst)
        {
            std::thread::park();
        }
        let stopping = shared.stopping.load(Ordering::SeqCst);
        if !stopping {
            // Let the records of the next few milliseconds join this one.
            std::thread::sleep(GATHER);
        }
        // Cleared before the buffers are taken: a record copied after its buffer was taken
        // sets it again.
        shared.pending.store(false, Ordering::SeqCst);
        // Every ticket below this one was taken under the lock of the buffer its record went
        // to, and the record copied before that lock was let go: taking the buffers below
        // finds them all. A record with a later ticket may be found in one buffer while an
        // earlier record, in a buffer taken before it arrived, is not: it waits for the next
        // batch. When stopping, everything taken is written.
        let below = if stopping {
            u64::MAX
        } else {
            shared.tickets.load(Ordering::SeqCst)
        };
        for part in shared.parts.iter() {
            let mut waiting = part.lock();
            if waiting.ends.is_empty() {
                continue;
            }
            let mut records = spare.pop().unwrap_or_default();
            std::mem::swap(&mut *waiting, &mut records);
            drop(waiting);
            if records.bytes.len() >= MAX_WAITING_BYTES {
                part.room.notify_all();
            }
            taken.push(records);
        }
        if taken.is_empty() && held.ends.is_empty() && stopping {
            return;
        }
        in_ticket_order(&taken, &held, below, &mut merged, &mut holding);
        if !merged.is_empty() {
            // A log that cannot be written (stdout closed) is not worth stopping the service
            // for; the records are dropped, as they would be by a closed pipe.
            let _ = out.write_all(&merged).and_then(|()| out.flush());
        }
        merged.clear();
        merged.shrink_to(KEPT_BYTES);
        std::mem::swap(&mut held, &mut holding);
        holding.clear();
        // As many go back as were taken out: one for each buffer taken.
        for mut records in taken.drain(..) {
            records.clear();
            spare.push(records);
        }
    }
}

/// The records of `taken` and of `earlier` (each in ticket order already), in ticket order:
/// those with a ticket below `below` into `merged`, the others into `held`.
fn in_ticket_order(
    taken: &[Records],
    earlier: &Records,
    below: u64,
    merged: &mut Vec<u8>,
    held: &mut Records,
) {
    let sources: Vec<&Records> = std::iter::once(earlier).chain(taken).collect();
    merged.reserve(sources.iter().map(|records| records.bytes.len()).sum());
    let mut next = vec![0; sources.len()];
    loop {
        let earliest = (0..sources.len())
            .filter_map(|at| Some((sources[at].ends.get(next[at])?.0, at)))
            .min();
        let Some((ticket, at)) = earliest else { return };
        let record = sources[at].record(next[at]);
        if ticket < below {
            merged.extend_from_slice(record);
        } else {
            held.push(ticket, record);
        }
        next[at] += 1;
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

    /// One connection's messages served by threads in turn, as a runtime's workers take up a
    /// task: its records leave in the order they were made, though each thread's buffer holds
    /// only every other one and the writer takes both buffers at once.
    #[test]
    fn records_made_one_after_another_on_different_threads_leave_in_that_order() {
        let received = Received::default();
        let (writer, guard) = writer(received.clone(), "test-log-writer").unwrap();
        let (to_odd, odd_turn) = std::sync::mpsc::channel::<usize>();
        let (to_even, even_turn) = std::sync::mpsc::channel::<usize>();
        let total = 20_000;
        let threads: Vec<_> = [(even_turn, to_odd), (odd_turn, to_even.clone())]
            .into_iter()
            .map(|(turn, hand_over)| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    while let Ok(n) = turn.recv() {
                        (&writer).write_all(format!("{n}\n").as_bytes()).unwrap();
                        if n + 1 == total || hand_over.send(n + 1).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        to_even.send(0).unwrap();
        drop(to_even);
        for thread in threads {
            thread.join().unwrap();
        }
        drop(guard);
        let bytes = received.0.lock().unwrap().0.clone();
        let numbers: Vec<usize> = String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| line.parse().unwrap())
            .collect();
        let misplaced = numbers.iter().enumerate().find(|&(at, &n)| at != n);
        assert_eq!(misplaced, None, "(position, record) first out of order");
        assert_eq!(numbers.len(), total);
    }

    /// The writer took one buffer before record 4 was copied to it, and the other after record
    /// 5 was: 5 waits for the batch that has 4, and leaves after it.
    #[test]
    fn a_record_whose_ticket_was_not_below_the_batch_waits_for_the_next() {
        let records = |items: &[(u64, &str)]| {
            let mut records = Records::default();
            for (ticket, text) in items {
                records.push(*ticket, text.as_bytes());
            }
            records
        };
        let (mut merged, mut held) = (Vec::new(), Records::default());
        let taken = [
            records(&[(1, "a"), (3, "c")]),
            records(&[(2, "b"), (5, "e")]),
        ];
        in_ticket_order(&taken, &Records::default(), 4, &mut merged, &mut held);
        assert_eq!(merged, b"abc");
        assert_eq!(
            (held.bytes.as_slice(), held.ends.as_slice()),
            (&b"e"[..], &[(5, 1)][..])
        );
        merged.clear();
        let earlier = std::mem::take(&mut held);
        in_ticket_order(
            &[records(&[(4, "d"), (6, "f")])],
            &earlier,
            7,
            &mut merged,
            &mut held,
        );
        assert_eq!(merged, b"def");
        assert!(held.ends.is_empty());
    }

    /// After a burst, the room its buffers took is given back: the buffer a thread gets when
    /// its next record is taken keeps at most KEPT_BYTES.
    #[test]
    fn a_burst_leaves_no_thread_holding_its_room() {
        let received = Received::default();
        let (writer, _guard) = writer(received.clone(), "test-log-writer").unwrap();
        let wait_for = |bytes: usize| {
            let began = std::time::Instant::now();
            while received.0.lock().unwrap().0.len() < bytes {
                assert!(began.elapsed() < Duration::from_secs(60), "never written");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        let record = vec![b'x'; 256 << 10];
        for _ in 0..8 {
            (&writer).write_all(&record).unwrap();
        }
        wait_for(8 * record.len());
        // Taking this one hands the thread an emptied buffer, perhaps the burst's.
        (&writer).write_all(b"after\n").unwrap();
        wait_for(8 * record.len() + 6);
        for part in writer.shared.parts.iter() {
            let kept = part.lock().bytes.capacity();
            assert!(kept <= KEPT_BYTES, "{kept} bytes kept");
        }
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
        writer
            .shared
            .parts
            .iter()
            .any(|part| part.lock().bytes.len() >= MAX_WAITING_BYTES)
    }
}
