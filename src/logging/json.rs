//! The JSON log record (`AWS_LAMBDA_LOG_FORMAT=JSON`), written into a `String` and handed to
//! the fmt layer whole.
//!
//! The record is the one tracing-subscriber's JSON format writes with this service's settings,
//! key for key and value for value: `level`, `fields` (in the order the event records them)
//! and `span` (the current span's fields and its `name`); no time (Lambda adds it), no target,
//! no list of spans. tracing-subscriber writes it through serde_json into an `io::Write` that
//! checks every piece as UTF-8 (a quote, a colon, a key), and parses the span's fields back
//! from JSON text for every record: about 27,000 instructions a record, the largest single
//! cost of a `ping` through `serve`. Here each piece is appended to a `String` as it is (not
//! through the layer's `dyn Write`, a call per piece), numbers are written by itoa and zmij as
//! serde_json writes them, and a span's fields are kept as JSON text that is copied into each
//! record: about 4,300 instructions for a `ping`'s record, still two fifths of its cost in-process
//! (`BENCH_LOG=1` on the message bench counts it).

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::json::escape;

/// A span's fields as the members of a JSON object, without its braces (`"a":1,"b":"x"`), so
/// that each record copies them as they are.
#[derive(Debug, Default, Clone, Copy)]
pub struct SpanFields;

impl<'w> FormatFields<'w> for SpanFields {
    /// The members are gathered in a buffer of this thread's and written at once: the span's
    /// own text starts empty (one span per event), and every write that outgrew it moved it.
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        in_one_piece(&mut writer, |text| {
            let mut members = Members::new(text, true);
            fields.record(&mut members);
            members.result
        })
    }

    /// Fields recorded on a span after it was made are appended; one recorded twice then
    /// appears twice, and a JSON reader keeps the later value, as tracing-subscriber does.
    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let first = current.fields.is_empty();
        let mut writer = current.as_writer();
        let mut members = Members::new(&mut writer, first);
        fields.record(&mut members);
        members.result
    }
}

/// The record: `{"level":…,"fields":{…},"span":{…,"name":…}}` and a newline.
#[derive(Debug, Default, Clone, Copy)]
pub struct Record;

impl<S> FormatEvent<S, SpanFields> for Record
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    /// The record is written into a `String` of this thread's and handed to the fmt layer in
    /// one piece: written straight through the layer's `Writer`, each of its 40-odd pieces (a
    /// key, a quote, a value) was a call through a `dyn Write`.
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, SpanFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        in_one_piece(&mut writer, |text| write_record(ctx, text, event))
    }
}

/// Writes what `write` writes into a `String` of this thread's (reused, so no allocation once it
/// has grown), then hands it to `writer` in one piece. Should the buffer be in use further up
/// this thread's stack (a field's `Debug` that logs; tracing drops such a record, but this does
/// not rely on it), a new `String` is used.
fn in_one_piece(
    writer: &mut Writer<'_>,
    write: impl FnOnce(&mut String) -> fmt::Result,
) -> fmt::Result {
    thread_local! {
        static TEXT: RefCell<String> = const { RefCell::new(String::new()) };
    }
    TEXT.with(|text| match text.try_borrow_mut() {
        Ok(mut text) => {
            text.clear();
            write(&mut text)?;
            writer.write_str(&text)
        }
        Err(_) => {
            let mut text = String::new();
            write(&mut text)?;
            writer.write_str(&text)
        }
    })
}

fn write_record<S>(
    ctx: &FmtContext<'_, S, SpanFields>,
    out: &mut String,
    event: &Event<'_>,
) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    out.push_str("{\"level\":\"");
    out.push_str(event.metadata().level().as_str());
    out.push_str("\",\"fields\":{");
    let mut members = Members::new(out, true);
    event.record(&mut members);
    members.result?;
    out.push('}');
    let span = event
        .parent()
        .and_then(|id| ctx.span(id))
        .or_else(|| ctx.lookup_current());
    if let Some(span) = span {
        out.push_str(",\"span\":{");
        let extensions = span.extensions();
        if let Some(fields) = extensions.get::<FormattedFields<SpanFields>>()
            && !fields.fields.is_empty()
        {
            out.push_str(&fields.fields);
            out.push(',');
        }
        out.push_str("\"name\":");
        string(out, span.metadata().name())?;
        out.push('}');
    }
    out.push_str("}\n");
    Ok(())
}

/// Writes fields as members of a JSON object, each value as serde_json writes it (through
/// tracing-serde, for the event's fields): strings and `Debug`/`Display` values as strings,
/// integers, floats and booleans as they are. 128-bit integers and errors come through
/// `record_debug`, as they do there.
struct Members<'a, W: fmt::Write> {
    out: &'a mut W,
    first: bool,
    result: fmt::Result,
}

impl<'a, W: fmt::Write> Members<'a, W> {
    fn new(out: &'a mut W, first: bool) -> Self {
        Members {
            out,
            first,
            result: Ok(()),
        }
    }

    /// A member whose value is not a string: `"key":` and the value.
    fn member(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        self.member_after(field, "\":", value);
    }

    /// A member whose value is a string: `"key":"`, the value's text escaped, and `"`.
    fn string_member(&mut self, field: &Field, text: impl FnOnce(&mut W) -> fmt::Result) {
        self.member_after(field, "\":\"", |out| {
            text(out)?;
            out.write_char('"')
        });
    }

    /// The punctuation between the pieces is written with them, in as few writes as it
    /// takes.
    fn member_after(
        &mut self,
        field: &Field,
        after_key: &str,
        value: impl FnOnce(&mut W) -> fmt::Result,
    ) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            let first = std::mem::take(&mut self.first);
            self.out.write_str(if first { "\"" } else { ",\"" })?;
            escape(self.out, field.name())?;
            self.out.write_str(after_key)?;
            value(self.out)
        })();
    }
}

impl<W: fmt::Write> Visit for Members<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.string_member(field, |out| escape(out, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.string_member(field, |out| write!(Escaped(out), "{value:?}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |out| {
            out.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |out| {
            out.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |out| {
            out.write_str(itoa::Buffer::new().format(value))
        });
    }

    /// As serde_json writes it (its `Number` is written by zmij): the shortest text that reads
    /// back the same (`1.0`, `1e21`), and `null` for a value that is not finite.
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.member(field, |out| {
            if value.is_finite() {
                out.write_str(zmij::Buffer::new().format_finite(value))
            } else {
                out.write_str("null")
            }
        });
    }
}

/// `text` as a JSON string, quotes included.
fn string<W: fmt::Write>(out: &mut W, text: &str) -> fmt::Result {
    out.write_char('"')?;
    escape(out, text)?;
    out.write_char('"')
}

/// Escapes what is written through it, as the inside of a JSON string.
struct Escaped<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        escape(self.0, text)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
    use tracing::subscriber::with_default;
    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    impl Lines {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// Every kind of field, in events with and without a span, a span with no fields, one with
    /// fields recorded after it was made, and text that needs escaping.
    fn events() {
        let odd = "quote \" backslash \\ newline \n tab \t bell \u{7} nul \u{0} é ✓ 🦀 \u{7f}";
        tracing::info!("no span, message only");
        tracing::warn!(
            text = odd,
            display = %odd,
            debug = ?odd,
            unsigned = u64::MAX,
            signed = i64::MIN,
            wide = u128::MAX,
            yes = true,
            no = false,
            whole = 1.0_f64,
            fraction = 0.1_f64,
            large = 1e21_f64,
            tiny = 5e-324_f64,
            nan = f64::NAN,
            infinite = f64::INFINITY,
            some = Some("x"),
            none = None::<&str>,
            "message with {} and \"quotes\"",
            "arguments"
        );
        let error = std::io::Error::other("an error \"quoted\"");
        tracing::error!(error = &error as &dyn std::error::Error, "an error field");
        tracing::info_span!("event", api_request_id = "req-1", odd).in_scope(|| {
            tracing::info!(connection_id = %"c1", duration_ms = 0.25, "message");
            tracing::info_span!("inner").in_scope(|| tracing::info!("in a span with no fields"));
        });
        let later = tracing::info_span!("later", first = 1, second = tracing::field::Empty);
        later.record("second", "recorded after");
        later.in_scope(|| tracing::info!("after a record"));
        let empty = tracing::info_span!("empty", only = tracing::field::Empty);
        empty.record("only", 7);
        empty.in_scope(|| tracing::info!("a span whose only field came later"));
        tracing::info!(parent: &later, "explicit parent, outside it");
    }

    fn records(text: &str) -> Vec<Value> {
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
            .collect()
    }

    /// The same records as tracing-subscriber's JSON format with the service's settings (read
    /// as JSON: key order within `span` differs, as it sorts a span's fields), one line each.
    #[test]
    fn records_are_tracing_subscribers() {
        let ours = Lines::default();
        let theirs = Lines::default();
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(ours.clone())
                    .fmt_fields(SpanFields)
                    .event_format(Record),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(theirs.clone())
                    .with_target(false)
                    .without_time()
                    .with_ansi(false)
                    .json()
                    .with_span_list(false),
            );
        with_default(subscriber, events);
        let (ours, theirs) = (ours.text(), theirs.text());
        assert_eq!(ours.lines().count(), 8, "{ours}");
        assert_eq!(records(&ours), records(&theirs), "\n{ours}\n{theirs}");
        assert!(ours.ends_with('\n'));
        // The event's fields keep their order, as tracing-subscriber writes them.
        for (mine, its) in ours.lines().zip(theirs.lines()) {
            let fields = |line: &str| line[..line.find("},").unwrap_or(line.len())].to_owned();
            assert_eq!(fields(mine), fields(its));
        }
    }
}
