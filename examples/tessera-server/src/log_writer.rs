//! Log output off the request path.
//!
//! A request appends its formatted log lines to a shared buffer; one thread writes
//! the buffer to stderr, gathering the lines of [`GATHER`] into one `write`. A
//! request never waits for stderr unless the buffer holds [`MAX_BUFFERED`] bytes
//! (stderr stalled), and then it waits for room: lines are delayed, never dropped.
//! Lines keep their order. [`flush`] writes what is buffered at once; the process
//! calls it before it exits.
//!
//! A line can also be written straight into the buffer
//! ([`BufferedStderr::append_with`]), without a copy of its own first.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer gathers lines after the first one before writing them.
const GATHER: Duration = Duration::from_millis(2);
/// Appending waits while this much is buffered.
const MAX_BUFFERED: usize = 1 << 20;

static SHARED: OnceLock<Arc<Shared>> = OnceLock::new();

#[derive(Default)]
struct Shared {
    /// The lines not written yet.
    buffer: Mutex<Vec<u8>>,
    /// Signalled when the buffer gets its first line.
    filled: Condvar,
    /// Signalled when the buffer was emptied.
    drained: Condvar,
    /// Held while a batch is taken and written, so batches reach stderr in order;
    /// holds the buffer of the previous batch, emptied, to be the next one, so that
    /// appending reuses its memory instead of growing a new one every batch.
    spare: Mutex<Vec<u8>>,
}

impl Shared {
    fn lock_buffer(&self) -> MutexGuard<'_, Vec<u8>> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends what `append` adds to the buffer, once there is room.
    fn append_with(&self, append: impl FnOnce(&mut Vec<u8>)) {
        let mut buffer = self.lock_buffer();
        while buffer.len() >= MAX_BUFFERED {
            buffer = self.drained.wait(buffer).unwrap_or_else(PoisonError::into_inner);
        }
        let was_empty = buffer.is_empty();
        append(&mut buffer);
        drop(buffer);
        if was_empty {
            self.filled.notify_one();
        }
    }

    fn append(&self, line: &[u8]) {
        self.append_with(|lines| lines.extend_from_slice(line));
    }

    /// Takes what is buffered and writes it to stderr.
    fn write_out(&self) {
        let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
        spare.clear();
        let batch = std::mem::replace(&mut *self.lock_buffer(), std::mem::take(&mut *spare));
        self.drained.notify_all();
        if !batch.is_empty() {
            // Nowhere to report a failing stderr; the lines are lost as they would
            // be with an unbuffered write.
            let mut stderr = io::stderr().lock();
            let _ = stderr.write_all(&batch);
            let _ = stderr.flush();
        }
        // Keep the memory for the next batch, unless a stall made it huge.
        if batch.capacity() <= MAX_BUFFERED {
            *spare = batch;
        }
    }

    fn run(&self) {
        loop {
            let mut buffer = self.lock_buffer();
            while buffer.is_empty() {
                buffer = self.filled.wait(buffer).unwrap_or_else(PoisonError::into_inner);
            }
            drop(buffer);
            std::thread::sleep(GATHER);
            self.write_out();
        }
    }
}

#[derive(Clone)]
pub(crate) struct BufferedStderr(Arc<Shared>);

impl BufferedStderr {
    /// The process's buffered stderr; starts the writer thread on first use. Falls
    /// back to writing directly if the thread cannot start.
    pub(crate) fn get() -> Option<Self> {
        if let Some(shared) = SHARED.get() {
            return Some(Self(shared.clone()));
        }
        let shared = Arc::new(Shared::default());
        let worker = shared.clone();
        std::thread::Builder::new().name("log-writer".into()).spawn(move || worker.run()).ok()?;
        Some(Self(SHARED.get_or_init(|| shared).clone()))
    }

    /// Appends what `append` writes to the buffer, in one piece among the lines.
    /// It runs while the buffer is locked, so it should be quick.
    pub(crate) fn append_with(&self, append: impl FnOnce(&mut Vec<u8>)) {
        self.0.append_with(append);
    }
}

/// Writes what is buffered to stderr now.
pub(crate) fn flush() {
    if let Some(shared) = SHARED.get() {
        shared.write_out();
    }
}

/// One event's output: `fmt` formats a whole line, then writes it here at once.
pub(crate) struct Appender<'a>(&'a Shared);

impl Write for Appender<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.append(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BufferedStderr {
    type Writer = Appender<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Appender(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_their_order_and_nothing_is_lost() {
        let shared = Shared::default();
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let lines: Vec<Vec<u8>> =
                    (0..1000).map(|i| format!("{t}:{i}\n").into_bytes()).collect();
                (t, lines)
            })
            .collect();
        std::thread::scope(|scope| {
            for (_, lines) in &threads {
                let shared = &shared;
                scope.spawn(move || {
                    for line in lines {
                        shared.append(line);
                    }
                });
            }
        });
        let buffered = String::from_utf8(shared.lock_buffer().clone()).expect("utf-8");
        for (t, _) in &threads {
            let seen: Vec<usize> = buffered
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("{t}:")))
                .map(|i| i.parse().expect("a number"))
                .collect();
            assert_eq!(seen, (0..1000).collect::<Vec<_>>(), "thread {t}");
        }
    }

    #[test]
    fn a_full_buffer_makes_appenders_wait_for_room() {
        let shared = Arc::new(Shared::default());
        shared.append(&vec![b'x'; MAX_BUFFERED]);
        let appender = {
            let shared = shared.clone();
            std::thread::spawn(move || shared.append(b"next\n"))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(!appender.is_finished(), "the appender waits while the buffer is full");
        let batch = std::mem::take(&mut *shared.lock_buffer());
        assert_eq!(batch.len(), MAX_BUFFERED);
        shared.drained.notify_all();
        appender.join().expect("appender");
        assert_eq!(*shared.lock_buffer(), b"next\n");
    }

    #[test]
    fn lines_written_in_place_keep_their_place_among_the_others() {
        let shared = Shared::default();
        std::thread::scope(|scope| {
            for t in 0..4u32 {
                let shared = &shared;
                scope.spawn(move || {
                    for i in 0..500u32 {
                        let n = t * 1000 + i;
                        if i.is_multiple_of(2) {
                            shared.append(format!("line {n}\n").as_bytes());
                        } else {
                            shared.append_with(|lines| {
                                lines.extend_from_slice(b"in place ");
                                lines.extend_from_slice(n.to_string().as_bytes());
                                lines.push(b'\n');
                            });
                        }
                    }
                });
            }
        });
        let text = String::from_utf8(shared.lock_buffer().clone()).expect("utf-8");
        assert_eq!(text.lines().count(), 2000);
        let number = |line: &str| -> u32 {
            line.rsplit_once(' ').and_then(|(_, n)| n.parse().ok()).expect("a number")
        };
        for t in 0..4u32 {
            // Each thread's lines, in the order it appended them.
            let seen: Vec<u32> = text.lines().map(number).filter(|n| n / 1000 == t).collect();
            assert_eq!(seen, (0..500).map(|i| t * 1000 + i).collect::<Vec<_>>(), "thread {t}");
        }
        for line in text.lines() {
            let kind = if number(line).is_multiple_of(2) { "line " } else { "in place " };
            assert!(line.starts_with(kind), "{line}");
        }
    }
}
