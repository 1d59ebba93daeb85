//! The text format of log lines written to a file or a pipe.
//!
//! The lines look like `tracing-subscriber`'s default ("full") format without
//! colours:
//!
//! ```text
//! 2026-11-25T22:20:44.501591Z  INFO tessera::audit: event="token_issued" client_id=billing-job client_address=127.0.0.1
//! ```
//!
//! — a UTC timestamp with microseconds, the level, the spans of the event with their
//! fields, the target, then the message and fields. String fields are quoted and
//! escaped; values given with `%` or `?` are written as they display when they are one
//! word of printable ASCII, and quoted and escaped otherwise; control characters in the
//! message are escaped. No value can start a new line or reach a terminal as a
//! control sequence, whatever a request sent. It does the same work as the default format with less of it: no
//! styling calls, and the date part of the timestamp formatted once per second per
//! thread. A server logs one line per token issued, so this is on the request path.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use tessera::scope::{Scope, ScopeSet};
use tessera_endpoint::{AuditEvent, AuditSink, LogAddress, TracingAudit};
use tessera_store::AccessTokenType;

use time::OffsetDateTime;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::log_writer::BufferedStderr;

/// The event format (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PlainFormat;

/// The field format of events and spans: `name=value` separated by spaces, the
/// message first and without its name.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PlainFields;

impl<S, N> FormatEvent<S, N> for PlainFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // The line is built in a plain `String` and handed over in one write: each of
        // its many small writes would otherwise cross the writer's dynamic layer.
        LINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                write_line(ctx, &mut *line, event)?;
                writer.write_str(&line)
            }
            // An event logged while formatting another (by a value's `Debug`).
            Err(_) => write_line(ctx, &mut writer, event),
        })
    }
}

thread_local! {
    /// The line being formatted on this thread.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Writes `event` as one line to `writer`.
fn write_line<S, N, W>(ctx: &FmtContext<'_, S, N>, writer: &mut W, event: &Event<'_>) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    W: fmt::Write,
{
    write_timestamp(writer, OffsetDateTime::now_utc())?;
    writer.write_str(level_label(*event.metadata().level()))?;
    if let Some(scope) = ctx.event_scope() {
        let mut any = false;
        for span in scope.from_root() {
            any = true;
            writer.write_str(span.name())?;
            let extensions = span.extensions();
            if let Some(fields) = extensions.get::<FormattedFields<N>>()
                && !fields.is_empty()
            {
                writer.write_char('{')?;
                writer.write_str(fields)?;
                writer.write_char('}')?;
            }
            writer.write_char(':')?;
        }
        if any {
            writer.write_char(' ')?;
        }
    }
    writer.write_str(event.metadata().target())?;
    writer.write_str(": ")?;
    let mut visitor = PlainVisitor { writer: &mut *writer, first: true, result: Ok(()) };
    event.record(&mut visitor);
    visitor.result?;
    writer.write_char('\n')
}

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = PlainVisitor { writer, first: true, result: Ok(()) };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// `" INFO "` and so on: the level right-aligned in five columns, between spaces.
fn level_label(level: Level) -> &'static str {
    match level {
        Level::ERROR => " ERROR ",
        Level::WARN => "  WARN ",
        Level::INFO => "  INFO ",
        Level::DEBUG => " DEBUG ",
        Level::TRACE => " TRACE ",
    }
}

thread_local! {
    /// The last second formatted on this thread, and its `YYYY-MM-DDTHH:MM:SS`.
    static SECOND: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
}

/// A moment as a line's timestamp shows it: its Unix second and the microseconds
/// into that second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    second: i64,
    micros: u32,
}

impl Stamp {
    fn of(at: OffsetDateTime) -> Self {
        Self { second: at.unix_timestamp(), micros: at.microsecond() }
    }

    /// Now, read from the system clock without converting it to a date.
    fn now() -> Self {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => Self {
                second: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
                micros: since.subsec_micros(),
            },
            // A clock before 1970.
            Err(_) => Self::of(OffsetDateTime::now_utc()),
        }
    }

    /// Calls `write` with the stamp's `YYYY-MM-DDTHH:MM:SS` (formatted once per
    /// second per thread) and its `.ffffffZ`.
    fn with_text<R>(self, write: impl FnOnce(&str, &str) -> R) -> Result<R, fmt::Error> {
        let mut fraction = *b".000000Z";
        // Six digits, the leading ones left at zero.
        digits_into(&mut fraction[1..7], u64::from(self.micros % 1_000_000));
        let fraction = std::str::from_utf8(&fraction).map_err(|_| fmt::Error)?;
        SECOND.with(|cell| {
            let mut cached = cell.borrow_mut();
            if cached.0 != self.second {
                let at =
                    OffsetDateTime::from_unix_timestamp(self.second).map_err(|_| fmt::Error)?;
                let mut text = String::with_capacity(19);
                write!(
                    text,
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                    at.year(),
                    u8::from(at.month()),
                    at.day(),
                    at.hour(),
                    at.minute(),
                    at.second()
                )?;
                *cached = (self.second, text);
            }
            Ok(write(&cached.1, fraction))
        })
    }
}

/// `2026-11-25T22:20:44.501591Z`.
fn write_timestamp(writer: &mut impl fmt::Write, now: OffsetDateTime) -> fmt::Result {
    Stamp::of(now).with_text(|date, fraction| {
        writer.write_str(date)?;
        writer.write_str(fraction)
    })?
}

struct PlainVisitor<W> {
    writer: W,
    first: bool,
    result: fmt::Result,
}

impl<W: fmt::Write> PlainVisitor<W> {
    /// Writes the separator and the field's name; `false` for fields not shown.
    fn start(&mut self, field: &Field) -> bool {
        let name = field.name();
        // Fields `tracing-log` adds to records of the `log` crate.
        if name.starts_with("log.") {
            return false;
        }
        if !self.first {
            self.result = self.result.and_then(|()| self.writer.write_char(' '));
        }
        self.first = false;
        if name != "message" {
            let name = name.strip_prefix("r#").unwrap_or(name);
            self.result = self.result.and_then(|()| {
                self.writer.write_str(name)?;
                self.writer.write_char('=')
            });
        }
        true
    }
}

impl<W: fmt::Write> Visit for PlainVisitor<W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.start(field) {
            self.result = self.result.and_then(|()| {
                if field.name() == "message" {
                    self.writer.write_str(value)
                } else {
                    write_quoted(&mut self.writer, value)
                }
            });
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.start(field) {
            self.result = self.result.and_then(|()| write!(self.writer, "{value}"));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.start(field) {
            self.result = self.result.and_then(|()| write!(self.writer, "{value}"));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.start(field) {
            self.result = self
                .result
                .and_then(|()| self.writer.write_str(if value { "true" } else { "false" }));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.start(field) {
            return;
        }
        // Values given with `%` or `?` (and the message) may hold what a request sent:
        // rendered first, then written so that no value can end the line or pass a
        // control character (an ANSI escape, say) to a terminal.
        let message = field.name() == "message";
        self.result = self.result.and_then(|()| {
            SCRATCH.with(|cell| match cell.try_borrow_mut() {
                Ok(mut text) => {
                    text.clear();
                    write!(text, "{value:?}")?;
                    write_value(&mut self.writer, &text, message)
                }
                Err(_) => {
                    let text = format!("{value:?}");
                    write_value(&mut self.writer, &text, message)
                }
            })
        });
    }
}

thread_local! {
    /// A value rendered before it is written.
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Writes a rendered value: the message as it is but with control characters escaped;
/// another value as it is when it is one word (`billing-job`, `127.0.0.1`, `Some(3)`,
/// `["bench"]`), else quoted and escaped.
fn write_value(writer: &mut impl fmt::Write, text: &str, message: bool) -> fmt::Result {
    if message {
        if text.bytes().all(|b| matches!(b, b' '..=b'~')) || !text.chars().any(char::is_control) {
            return writer.write_str(text);
        }
        for c in text.chars() {
            if c.is_control() {
                write!(writer, "{}", c.escape_debug())?;
            } else {
                writer.write_char(c)?;
            }
        }
        return Ok(());
    }
    if is_one_word(text) { writer.write_str(text) } else { write_quoted(writer, text) }
}

/// Whether `text` is one word: not empty, no whitespace or control character, so it
/// can neither start a new line nor pass for another field.
fn is_one_word(text: &str) -> bool {
    // Printable ASCII without a space (most values: ids, addresses, scopes' parts)
    // is decided byte by byte, without decoding characters.
    if every_byte(text.as_bytes(), |b| b.is_ascii_graphic()) {
        return !text.is_empty();
    }
    !text.is_empty() && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Whether `value` stands between quotes as it is: printable ASCII without `"` or `\\`.
fn quotes_as_it_is(value: &[u8]) -> bool {
    every_byte(value, |b| matches!(b, b' '..=b'~') && b != b'"' && b != b'\\')
}

/// Whether every byte of `text` is one `check` accepts: 16 bytes at a time, each
/// group checked whole, which the compiler turns into vector instructions.
fn every_byte(text: &[u8], check: impl Fn(u8) -> bool) -> bool {
    let (groups, rest) = text.as_chunks::<16>();
    groups.iter().all(|group| group.iter().fold(true, |all, &b| all & check(b)))
        && rest.iter().all(|&b| check(b))
}

/// `value` quoted and escaped as `{:?}` writes it; a value of printable ASCII without
/// `"` or `\` (most values) in one piece, without the escaping machinery.
fn write_quoted(writer: &mut impl fmt::Write, value: &str) -> fmt::Result {
    if quotes_as_it_is(value.as_bytes()) {
        writer.write_char('"')?;
        writer.write_str(value)?;
        writer.write_char('"')
    } else {
        write!(writer, "{value:?}")
    }
}

/// The audit sink of a server that logs in this format to its buffered standard
/// error: the `token_issued` line, one per token, is the same line `tracing` and
/// [`PlainFormat`] would write from [`TracingAudit`]'s event, written as bytes
/// straight into the log buffer ([`write_token_issued`]) instead of rendering each
/// field through `tracing`'s visitors and formatter (see docs/benchmarks.md). Whether
/// the line is written at all is still the log filter's decision (by target and
/// level); every other event goes through `tracing`.
#[derive(Clone)]
pub(crate) struct PlainAudit(BufferedStderr);

impl PlainAudit {
    pub(crate) fn new(out: BufferedStderr) -> Self {
        Self(out)
    }
}

impl fmt::Debug for PlainAudit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainAudit")
    }
}

impl AuditSink for PlainAudit {
    fn record(&self, event: &AuditEvent<'_>, client_address: Option<IpAddr>) {
        if !matches!(event, AuditEvent::TokenIssued { .. }) {
            return TracingAudit.record(event, client_address);
        }
        if !tracing::enabled!(target: "tessera::audit", Level::INFO) {
            return;
        }
        let stamp = Stamp::now();
        let mut written = false;
        self.0.append_with(|lines| {
            written = write_token_issued(lines, stamp, event, client_address);
        });
        if !written {
            // A time no date can show: `tracing` writes the line as it can.
            TracingAudit.record(event, client_address);
        }
    }
}

/// Appends the `token_issued` line of `event` at `stamp` to `out`: the line
/// [`PlainFormat`] writes for the event [`TracingAudit`] logs. Values of printable
/// ASCII (nearly all) are copied as they are; only others are checked and escaped.
/// `false`, and nothing appended, for another event or a `stamp` no date shows.
fn write_token_issued(
    out: &mut Vec<u8>,
    stamp: Stamp,
    event: &AuditEvent<'_>,
    client_address: Option<IpAddr>,
) -> bool {
    let AuditEvent::TokenIssued { client_id, jti, token_type, scope, audience, expires_at } =
        *event
    else {
        return false;
    };
    let dated = stamp.with_text(|date, fraction| {
        out.extend_from_slice(date.as_bytes());
        out.extend_from_slice(fraction.as_bytes());
    });
    if dated.is_err() {
        return false;
    }
    out.extend_from_slice(level_label(Level::INFO).as_bytes());
    out.extend_from_slice(b"tessera::audit: event=\"token_issued\" client_id=");
    push_value(out, client_id);
    out.extend_from_slice(b" jti=");
    push_value(out, jti);
    GRANT.with_borrow_mut(|grant| grant.write(out, token_type, scope, audience));
    out.extend_from_slice(b" expires_at=");
    push_decimal(out, expires_at.unix_timestamp());
    if let Some(addr) = client_address {
        out.extend_from_slice(b" client_address=");
        LogAddress(addr).append_to(out);
    }
    out.push(b'\n');
    true
}

thread_local! {
    /// The grant of the last `token_issued` line written on this thread.
    static GRANT: RefCell<Grant> = const { RefCell::new(Grant::new()) };
}

/// A `token_issued` line's token type, scope and audience, with their part of the
/// line (` token_type=… scope=… audience=…`). A client gets tokens of the same grant
/// again and again, so the part is written once and copied while the grant stays.
struct Grant {
    token_type: Option<AccessTokenType>,
    scope: ScopeSet,
    audience: Vec<String>,
    text: Vec<u8>,
}

impl Grant {
    const fn new() -> Self {
        Self { token_type: None, scope: ScopeSet::new(), audience: Vec::new(), text: Vec::new() }
    }

    fn is(&self, token_type: AccessTokenType, scope: &ScopeSet, audience: &[String]) -> bool {
        self.token_type == Some(token_type) && self.audience == audience && self.scope == *scope
    }

    /// Appends the part of the line of this grant, written anew unless it is the
    /// last one's.
    fn write(
        &mut self,
        out: &mut Vec<u8>,
        token_type: AccessTokenType,
        scope: &ScopeSet,
        audience: &[String],
    ) {
        if !self.is(token_type, scope, audience) {
            self.text.clear();
            self.text.extend_from_slice(b" token_type=");
            push_value(&mut self.text, token_type.as_str());
            self.text.extend_from_slice(b" scope=");
            push_words(&mut self.text, scope.iter().map(Scope::as_str));
            self.text.extend_from_slice(b" audience=");
            push_words(&mut self.text, audience.iter().map(String::as_str));
            self.token_type = Some(token_type);
            self.scope.clone_from(scope);
            self.audience.clear();
            self.audience.extend_from_slice(audience);
        }
        out.extend_from_slice(&self.text);
    }
}

/// Appends `text` as [`write_value`] writes it: one word of printable ASCII as it
/// is, anything else checked and escaped.
fn push_value(out: &mut Vec<u8>, text: &str) {
    if !text.is_empty() && every_byte(text.as_bytes(), |b| b.is_ascii_graphic()) {
        out.extend_from_slice(text.as_bytes());
    } else {
        push_formatted(out, |line| write_value(line, text, false));
    }
}

/// Appends `words` joined by single spaces, as [`write_value`] writes the joined
/// text; without joining them first when there is one word, or when every word can
/// stand in quotes as it is (scopes and audiences always can).
fn push_words<'a>(out: &mut Vec<u8>, mut words: impl ExactSizeIterator<Item = &'a str> + Clone) {
    if words.len() == 1 {
        if let Some(word) = words.next() {
            push_value(out, word);
        }
        return;
    }
    // Empty, or several words: never one word, so quoted.
    if words.clone().all(|word| quotes_as_it_is(word.as_bytes())) {
        out.push(b'"');
        for (i, word) in words.enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(word.as_bytes());
        }
        out.push(b'"');
        return;
    }
    let joined = words.collect::<Vec<_>>().join(" ");
    push_formatted(out, |line| write_quoted(line, &joined));
}

/// Appends what `write` formats.
fn push_formatted(out: &mut Vec<u8>, write: impl FnOnce(&mut String) -> fmt::Result) {
    let mut text = String::new();
    // Writing to a `String` cannot fail.
    let _ = write(&mut text);
    out.extend_from_slice(text.as_bytes());
}

/// Appends `n` in decimal, as `{}` writes it.
fn push_decimal(out: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let at = digits_into(&mut digits, n.unsigned_abs());
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

/// Writes the decimal digits of `n` (at least one) at the end of `buf`, right to
/// left, and returns where they start; `buf` must have room for them.
fn digits_into(buf: &mut [u8], mut n: u64) -> usize {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return at;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("capture").extend_from_slice(data);
            Ok(data.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn string_values_are_quoted_as_the_formatter_quotes_them() -> fmt::Result {
        for value in
            ["", "token_issued", "a b~!", "quo\"te", "back\\slash", "tab\t", "é", "\u{7f}", "it's"]
        {
            let mut ours = String::new();
            write_quoted(&mut ours, value)?;
            assert_eq!(ours, format!("{value:?}"));
        }
        for value in [i64::MIN, -1, 0, 42, i64::MAX] {
            let line = capture(|| tracing::info!(n = value, u = value.unsigned_abs(), s = "x"));
            assert!(
                line.ends_with(&format!(": n={value} u={} s=\"x\"\n", value.unsigned_abs())),
                "{line}"
            );
        }
        Ok(())
    }

    fn capture(log: impl FnOnce()) -> String {
        let out = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .with_ansi(false)
            .event_format(PlainFormat)
            .fmt_fields(PlainFields)
            .with_writer(out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let bytes = out.0.lock().expect("capture").clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    /// The line without its timestamp, which it checks.
    fn after_timestamp(line: &str) -> &str {
        let (stamp, rest) = line.split_at(27);
        let parsed = OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("{stamp:?}: {e}"));
        let age = OffsetDateTime::now_utc() - parsed;
        assert!(age >= time::Duration::ZERO && age < time::Duration::seconds(60), "{stamp}");
        rest
    }

    #[test]
    fn events_with_spans_fields_and_levels() {
        let address: std::net::IpAddr = [127, 0, 0, 1].into();
        let out = capture(|| {
            let span = tracing::info_span!("request", client_address = %address);
            let _entered = span.enter();
            tracing::info!(
                target: "tessera::audit",
                event = "token_issued",
                client_id = %"billing-job",
                audience = ?["bench"],
                expires_at = 1_795_688_444_i64,
                revoked = false,
            );
            tracing::warn!(purged = 3_u64, "purged expired token records");
        });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert_eq!(
            after_timestamp(lines[0]),
            "  INFO request{client_address=127.0.0.1}: tessera::audit: event=\"token_issued\" \
             client_id=billing-job audience=[\"bench\"] expires_at=1795688444 revoked=false"
        );
        assert!(
            after_timestamp(lines[1]).starts_with("  WARN request{client_address=127.0.0.1}: "),
            "{}",
            lines[1]
        );
        assert!(lines[1].ends_with(": purged expired token records purged=3"), "{}", lines[1]);
    }

    #[test]
    fn string_values_cannot_start_a_new_line() {
        let out = capture(|| {
            tracing::error!(client_id = "evil\nFAKE  INFO forged", "no span here");
        });
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(
            after_timestamp(&out).starts_with(
                " ERROR tessera_server::log_format::tests: no span here \
                 client_id=\"evil\\nFAKE  INFO forged\""
            ),
            "{out}"
        );
    }

    #[test]
    fn display_and_debug_values_and_messages_cannot_forge_lines_or_escape() {
        let hostile = [
            "x\nFORGED  INFO tessera::audit: event=\"token_issued\"",
            "x\r\nFORGED",
            "\u{1b}[31mred\u{1b}[0m",
            "quo\"te",
            "back\\slash",
            "two words",
            "",
            "\u{2028}line separator",
            "tab\there",
            "nul\0",
        ];
        for value in hostile {
            let out = capture(|| {
                tracing::warn!(
                    target: "tessera::audit",
                    event = "client_throttled",
                    client_id = %value,
                    debug = ?value,
                    "refused {value}"
                );
            });
            assert_eq!(out.lines().count(), 1, "{value:?}: {out}");
            assert!(
                !out.contains('\u{1b}') && !out.contains('\r') && !out.contains('\0'),
                "{out:?}"
            );
            let line = out.trim_end_matches('\n');
            // A value is quoted and escaped unless it is one word.
            let expected = if is_one_word(value) { value.to_owned() } else { format!("{value:?}") };
            assert!(line.contains(&format!("client_id={expected} ")), "{value:?}: {line}");
            let debug = format!("{value:?}");
            let debug = if is_one_word(&debug) { debug } else { format!("{debug:?}") };
            assert!(line.ends_with(&format!(" debug={debug}")), "{line}");
        }
        // Plain values stay as they were.
        let out = capture(|| tracing::info!(client_id = %"billing-job", address = ?Some(3)));
        assert!(out.ends_with(": client_id=billing-job address=Some(3)\n"), "{out}");
    }

    #[test]
    fn the_direct_token_issued_line_is_the_line_tracing_writes() -> fmt::Result {
        use tessera::scope::ScopeSet;
        use tessera_endpoint::AuditEvent;
        use tessera_store::AccessTokenType;

        let scopes = ["openid profile urn:zitadel:iam:org:project:id:bench:aud", "openid", ""]
            .map(|s| if s.is_empty() { ScopeSet::default() } else { ScopeSet::parse(s).expect(s) });
        let audiences: [&[&str]; 7] = [
            &[],
            &["bench"],
            &["bench", "bench-client"],
            &[""],
            &["x\nFORGED  INFO tessera::audit: event=\"token_issued\""],
            &["quo\"te", "é"],
            &["a\\b"],
        ];
        let client_ids = [
            "billing-job",
            "x\nFORGED  INFO tessera::audit: event=\"token_issued\"",
            "\u{1b}[31mred",
            "two words",
            "",
            "é",
            "quo\"te",
        ];
        let addresses: [Option<IpAddr>; 3] =
            [None, Some([127, 0, 0, 1].into()), Some("2001:db8::1".parse().expect("address"))];
        for (i, client_id) in client_ids.into_iter().enumerate() {
            for (j, audience) in audiences.iter().enumerate() {
                let audience: Vec<String> = audience.iter().map(|a| (*a).to_owned()).collect();
                let scope = &scopes[(i + j) % scopes.len()];
                let client_address = addresses[(i + 2 * j) % addresses.len()];
                let token_type =
                    if j % 2 == 0 { AccessTokenType::Opaque } else { AccessTokenType::Jwt };
                let event = AuditEvent::TokenIssued {
                    client_id,
                    jti: if j == 3 { "jti with space" } else { "V1StGXR8_Z5jdHi6B-myT" },
                    token_type,
                    scope,
                    audience: &audience,
                    expires_at: OffsetDateTime::from_unix_timestamp(1_795_688_444 + i as i64)
                        .expect("time"),
                };
                let traced = capture(|| TracingAudit.record(&event, client_address));
                let now = OffsetDateTime::now_utc();
                // Twice: the second line copies the grant's part the first wrote.
                for _ in 0..2 {
                    let mut out = b"kept".to_vec();
                    assert!(write_token_issued(&mut out, Stamp::of(now), &event, client_address));
                    let direct = String::from_utf8(out).expect("utf-8");
                    let direct = direct.strip_prefix("kept").expect("appended");
                    assert_eq!(after_timestamp(direct), after_timestamp(&traced), "{event:?}");
                    assert_eq!(direct.lines().count(), 1, "{direct}");
                    let mut timestamp = String::new();
                    write_timestamp(&mut timestamp, now)?;
                    assert!(direct.starts_with(&timestamp), "{direct}");
                }
            }
        }
        // Only `token_issued` is written directly.
        let other = AuditEvent::TokenRevoked { jti: "j", client_id: "c", by: "b" };
        let mut out = Vec::new();
        assert!(!write_token_issued(&mut out, Stamp::now(), &other, None));
        assert!(out.is_empty());
        Ok(())
    }

    #[test]
    fn a_grant_that_changes_in_one_part_is_written_anew() {
        use tessera::scope::ScopeSet;
        use tessera_endpoint::AuditEvent;
        use tessera_store::AccessTokenType;

        let both = ScopeSet::parse("openid profile").expect("scope");
        let other = ScopeSet::parse("openid email").expect("scope");
        let one = ScopeSet::parse("openid").expect("scope");
        let bench = vec!["bench".to_owned()];
        let api = vec!["api".to_owned()];
        let grants = [
            (AccessTokenType::Opaque, &both, &bench),
            (AccessTokenType::Jwt, &both, &bench),
            (AccessTokenType::Jwt, &other, &bench),
            (AccessTokenType::Jwt, &one, &bench),
            (AccessTokenType::Jwt, &one, &api),
            (AccessTokenType::Opaque, &both, &bench),
        ];
        let expected = [
            " token_type=opaque scope=\"openid profile\" audience=bench ",
            " token_type=jwt scope=\"openid profile\" audience=bench ",
            " token_type=jwt scope=\"openid email\" audience=bench ",
            " token_type=jwt scope=openid audience=bench ",
            " token_type=jwt scope=openid audience=api ",
            " token_type=opaque scope=\"openid profile\" audience=bench ",
        ];
        for ((token_type, scope, audience), expected) in grants.into_iter().zip(expected) {
            let event = AuditEvent::TokenIssued {
                client_id: "billing-job",
                jti: "V1StGXR8_Z5jdHi6B-myT",
                token_type,
                scope,
                audience,
                expires_at: OffsetDateTime::now_utc(),
            };
            let mut out = Vec::new();
            assert!(write_token_issued(&mut out, Stamp::now(), &event, None));
            let line = String::from_utf8(out).expect("utf-8");
            assert!(line.contains(expected), "{line}");
        }
    }

    #[test]
    fn byte_checks_see_every_byte() {
        for len in 0..40 {
            let clean = "a".repeat(len);
            assert!(every_byte(clean.as_bytes(), |b| b == b'a'));
            for at in 0..len {
                let mut dirty = clean.clone().into_bytes();
                dirty[at] = b' ';
                assert!(!every_byte(&dirty, |b| b == b'a'), "{len} {at}");
            }
        }
    }

    #[test]
    fn numbers_are_written_as_display_writes_them() {
        for n in [i64::MIN, i64::MIN + 1, -10, -1, 0, 1, 9, 10, 1_796_600_393, i64::MAX] {
            let mut out = b"=".to_vec();
            push_decimal(&mut out, n);
            assert_eq!(out, format!("={n}").into_bytes());
        }
    }

    #[test]
    fn the_clock_read_directly_is_the_clock_time_reads() {
        let before = Stamp::of(OffsetDateTime::now_utc());
        let now = Stamp::now();
        let after = Stamp::of(OffsetDateTime::now_utc());
        assert!((before.second, before.micros) <= (now.second, now.micros), "{before:?} {now:?}");
        assert!((now.second, now.micros) <= (after.second, after.micros), "{now:?} {after:?}");
    }

    #[test]
    fn timestamps_have_microseconds_and_change_with_the_second() {
        for (unix, nanos, expected) in [
            (1_795_688_444, 501_591_000, "2026-11-26T10:20:44.501591Z"),
            (1_795_688_445, 7_000, "2026-11-26T10:20:45.000007Z"),
            (0, 0, "1970-01-01T00:00:00.000000Z"),
        ] {
            let at = OffsetDateTime::from_unix_timestamp(unix).expect("time")
                + time::Duration::nanoseconds(nanos);
            let mut text = String::new();
            write_timestamp(&mut Writer::new(&mut text), at).expect("format");
            assert_eq!(text, expected);
        }
    }
}
