//! Log output off the request path.
//!
//! A request appends its formatted log lines to a shared buffer; one thread writes
//! the buffer to stderr, gathering the lines of [`GATHER`] into one `write`. A
//! request never waits for stderr unless the buffer holds [`MAX_BUFFERED`] bytes
//! (stderr stalled), and then it waits for room: lines are delayed, never dropped.
//! Lines keep their order. [`flush`] writes what is buffered at once; the process
//! calls it before it exits.
//!
//! A line can also be appended as a record: its fields in a compact encoding and the
//! function that renders them ([`BufferedStderr::append_record`]). The writer thread
//! renders it in its place among the lines, so the request path only copies the
//! fields, and the formatting runs in batches off it.

use std::io::{self, Write};
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer gathers lines after the first one before writing them.
const GATHER: Duration = Duration::from_millis(2);
/// Appending waits while this much is buffered.
const MAX_BUFFERED: usize = 1 << 20;

static SHARED: OnceLock<Arc<Shared>> = OnceLock::new();

/// Renders a record's encoded fields as its line, appended to the output.
pub(crate) type Render = fn(&[u8], &mut Vec<u8>);

/// What is buffered: lines, and records to render among them.
#[derive(Default)]
struct Batch {
    lines: Vec<u8>,
    /// Each record: where in `lines` its line goes, its fields in `fields`, and how
    /// to render them.
    records: Vec<(usize, Range<usize>, Render)>,
    fields: Vec<u8>,
}

impl Batch {
    fn len(&self) -> usize {
        self.lines.len() + self.fields.len()
    }

    fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.records.is_empty()
    }

    fn clear(&mut self) {
        self.lines.clear();
        self.records.clear();
        self.fields.clear();
    }

    /// The lines with every record rendered in its place.
    fn render(&self, out: &mut Vec<u8>) {
        let mut at = 0;
        for (position, fields, render) in &self.records {
            out.extend_from_slice(&self.lines[at..*position]);
            render(&self.fields[fields.clone()], out);
            at = *position;
        }
        out.extend_from_slice(&self.lines[at..]);
    }
}

#[derive(Default)]
struct Shared {
    buffer: Mutex<Batch>,
    /// Signalled when the buffer gets its first line.
    filled: Condvar,
    /// Signalled when the buffer was emptied.
    drained: Condvar,
    /// Held while a batch is taken and written, so batches reach stderr in order;
    /// holds the buffer of the previous batch, emptied, to be the next one, so that
    /// appending reuses its memory instead of growing a new one every batch, and the
    /// memory records are rendered into.
    output: Mutex<(Batch, Vec<u8>)>,
}

impl Shared {
    fn lock_buffer(&self) -> MutexGuard<'_, Batch> {
        self.buffer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends what `append` adds to the buffer, once there is room.
    fn append_with(&self, append: impl FnOnce(&mut Batch)) {
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
        self.append_with(|batch| batch.lines.extend_from_slice(line));
    }

    fn append_record(&self, encode: impl FnOnce(&mut Vec<u8>), render: Render) {
        self.append_with(|batch| {
            let start = batch.fields.len();
            encode(&mut batch.fields);
            let fields = start..batch.fields.len();
            batch.records.push((batch.lines.len(), fields, render));
        });
    }

    /// Takes what is buffered and writes it to stderr.
    fn write_out(&self) {
        let mut output = self.output.lock().unwrap_or_else(PoisonError::into_inner);
        let (spare, rendered) = &mut *output;
        spare.clear();
        let batch = std::mem::replace(&mut *self.lock_buffer(), std::mem::take(spare));
        self.drained.notify_all();
        if !batch.is_empty() {
            let text = if batch.records.is_empty() {
                &batch.lines
            } else {
                rendered.clear();
                batch.render(rendered);
                &*rendered
            };
            // Nowhere to report a failing stderr; the lines are lost as they would
            // be with an unbuffered write.
            let mut stderr = io::stderr().lock();
            let _ = stderr.write_all(text);
            let _ = stderr.flush();
        }
        // Keep the memory for the next batch, unless a stall made it huge.
        if batch.lines.capacity() + batch.fields.capacity() <= MAX_BUFFERED {
            *spare = batch;
        }
        if rendered.capacity() > MAX_BUFFERED {
            *rendered = Vec::new();
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

    /// Appends a line as a record: `encode` writes its fields, and the writer thread
    /// renders them with `render` in the line's place.
    pub(crate) fn append_record(&self, encode: impl FnOnce(&mut Vec<u8>), render: Render) {
        self.0.append_record(encode, render);
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
        let buffered = String::from_utf8(shared.lock_buffer().lines.clone()).expect("utf-8");
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
        assert_eq!(shared.lock_buffer().lines, b"next\n");
    }

    /// Renders a record of one number as `record <n>`.
    fn render_number(fields: &[u8], out: &mut Vec<u8>) {
        let n = u32::from_le_bytes(fields.try_into().expect("four bytes"));
        out.extend_from_slice(format!("record {n}\n").as_bytes());
    }

    #[test]
    fn records_are_rendered_in_their_place_among_the_lines() {
        let shared = Shared::default();
        std::thread::scope(|scope| {
            for t in 0..4u32 {
                let shared = &shared;
                scope.spawn(move || {
                    for i in 0..500u32 {
                        if i.is_multiple_of(2) {
                            shared.append(format!("line {}\n", t * 1000 + i).as_bytes());
                        } else {
                            let n = t * 1000 + i;
                            shared.append_record(
                                |fields| fields.extend_from_slice(&n.to_le_bytes()),
                                render_number,
                            );
                        }
                    }
                });
            }
        });
        let mut out = Vec::new();
        shared.lock_buffer().render(&mut out);
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(text.lines().count(), 2000);
        for t in 0..4u32 {
            // Each thread's lines and records, in the order it appended them.
            let seen: Vec<u32> = text
                .lines()
                .filter_map(|l| l.split_once(' ').and_then(|(_, n)| n.parse::<u32>().ok()))
                .filter(|n| n / 1000 == t)
                .collect();
            assert_eq!(seen, (0..500).map(|i| t * 1000 + i).collect::<Vec<_>>(), "thread {t}");
            for line in text.lines() {
                let n: u32 = line.split_once(' ').and_then(|(_, n)| n.parse().ok()).expect("n");
                let kind = if n.is_multiple_of(2) { "line" } else { "record" };
                assert!(line.starts_with(kind), "{line}");
            }
        }
    }
}
