//! An incremental parser for `text/event-stream` (the server-sent events wire
//! format), written against the WHATWG "event stream interpretation" rules.
//!
//! Bytes arrive in arbitrary chunks: a chunk may end in the middle of a line,
//! between the `\r` and `\n` of a CRLF, or inside a multi-byte UTF-8
//! character. The parser therefore buffers raw bytes until a line ends and
//! only then decodes it, and remembers a trailing `\r` across chunks.

/// One dispatched event: what a blank line ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseFrame {
    /// The `id:` field of this frame, if it had one.
    pub id: Option<String>,
    /// The `event:` field of this frame, if it had one.
    pub event: Option<String>,
    /// The `data:` lines of this frame, joined with `\n`.
    pub data: String,
}

/// Incremental `text/event-stream` parser. Feed it chunks with
/// [`SseParser::push`]; it returns the frames each chunk completes.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the line being read (without its terminator).
    line: Vec<u8>,
    /// The previous chunk ended with `\r`; a leading `\n` belongs to it.
    skip_lf: bool,
    /// The first line of the stream has been read (a BOM may precede it).
    started: bool,
    data: String,
    event: Option<String>,
    /// The `id:` field of the frame being read, if any.
    frame_id: Option<String>,
    /// The spec's "last event ID buffer": set by `id:` fields, committed to
    /// `last_event_id` only when a frame is dispatched, so an id whose frame
    /// was cut off by a disconnect is not skipped on resume.
    id_buffer: Option<String>,
    last_event_id: Option<String>,
    retry_ms: Option<u64>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser that resumes after `last_event_id` (what a reconnect sends
    /// as `Last-Event-ID`).
    pub fn resuming_after(last_event_id: Option<String>) -> Self {
        Self { id_buffer: last_event_id.clone(), last_event_id, ..Self::default() }
    }

    /// The id of the last complete frame (set by its or an earlier frame's
    /// `id:` field), kept across connections: the value to send as
    /// `Last-Event-ID` on reconnect.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// Makes the next connection resume after `id` (the server said the
    /// events before it are gone).
    pub fn resume_after(&mut self, id: String) {
        self.last_event_id = Some(id.clone());
        self.id_buffer = Some(id);
    }

    /// The reconnection delay the server asked for with `retry:`, in ms.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    /// Feeds one chunk; returns the frames it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseFrame> {
        let mut frames = Vec::new();
        let mut rest = chunk;
        if self.skip_lf {
            self.skip_lf = false;
            if let Some(stripped) = rest.strip_prefix(b"\n") {
                rest = stripped;
            }
        }
        while let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..end]);
            let terminator = rest[end];
            rest = &rest[end + 1..];
            if terminator == b'\r' {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    // The `\n` of a CRLF may be the first byte of the next chunk.
                    None => self.skip_lf = true,
                }
            }
            self.end_line(&mut frames);
        }
        self.line.extend_from_slice(rest);
        frames
    }

    /// Forgets a partly received line and frame (the connection ended in the
    /// middle of it; the spec discards such an event). Keeps the last event
    /// id and the retry delay, which outlive connections.
    pub fn reset_connection(&mut self) {
        self.line.clear();
        self.skip_lf = false;
        self.started = false;
        self.data.clear();
        self.event = None;
        self.frame_id = None;
        self.id_buffer = self.last_event_id.clone();
    }

    fn end_line(&mut self, frames: &mut Vec<SseFrame>) {
        let mut bytes = std::mem::take(&mut self.line);
        if !self.started {
            self.started = true;
            if bytes.starts_with(b"\xEF\xBB\xBF") {
                bytes.drain(..3);
            }
        }
        let line = String::from_utf8_lossy(&bytes);
        if line.is_empty() {
            self.dispatch(frames);
        } else if !line.starts_with(':') {
            // Lines starting with ':' are comments (keep-alives); ignored.
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line.as_ref(), ""),
            };
            self.field(field, value);
        }
        // Reuse the allocation for the next line.
        bytes.clear();
        self.line = bytes;
    }

    fn field(&mut self, field: &str, value: &str) {
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => {
                self.frame_id = Some(value.to_owned());
                self.id_buffer = (!value.is_empty()).then(|| value.to_owned());
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry_ms = value.parse().ok();
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, frames: &mut Vec<SseFrame>) {
        let id = self.frame_id.take();
        let event = self.event.take();
        self.last_event_id = self.id_buffer.clone();
        if self.data.is_empty() {
            // A frame without data is not an event (its id still counts).
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        frames.push(SseFrame { id, event, data });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(id: Option<&str>, event: Option<&str>, data: &str) -> SseFrame {
        SseFrame { id: id.map(str::to_owned), event: event.map(str::to_owned), data: data.to_owned() }
    }

    fn parse_all(input: &[u8]) -> Vec<SseFrame> {
        SseParser::new().push(input)
    }

    const STREAM: &str = ": hello\n\
        id: 1\nevent: WORKSPACE_ONLINE\ndata: {\"seq\":1}\n\n\
        : keep-alive\n\n\
        id: 2\r\nevent: TASK_UPDATED\r\ndata: first\r\ndata: second\r\n\r\n\
        id: 3\revent: ünïcödé ✓\rdata:no-space\r\r\
        data\n\n";

    fn expected_stream() -> Vec<SseFrame> {
        vec![
            frame(Some("1"), Some("WORKSPACE_ONLINE"), "{\"seq\":1}"),
            frame(Some("2"), Some("TASK_UPDATED"), "first\nsecond"),
            frame(Some("3"), Some("ünïcödé ✓"), "no-space"),
            frame(None, None, ""),
        ]
    }

    #[test]
    fn a_whole_stream_parses_into_its_frames() {
        assert_eq!(parse_all(STREAM.as_bytes()), expected_stream());
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        let frames = parse_all(b"data: a\ndata:  b\ndata:\ndata: c\n\n");
        assert_eq!(frames, vec![frame(None, None, "a\n b\n\nc")]);
    }

    #[test]
    fn comments_and_keep_alives_produce_no_frames() {
        assert!(parse_all(b": keep-alive\n\n:\n\n: x: y\n\n").is_empty());
    }

    #[test]
    fn a_frame_without_a_blank_line_is_not_dispatched_yet() {
        let mut parser = SseParser::new();
        assert!(parser.push(b"id: 7\ndata: x\n").is_empty());
        assert_eq!(parser.push(b"\n"), vec![frame(Some("7"), None, "x")]);
    }

    #[test]
    fn every_split_into_two_chunks_gives_the_same_frames() {
        let bytes = STREAM.as_bytes();
        for split in 0..=bytes.len() {
            let mut parser = SseParser::new();
            let mut frames = parser.push(&bytes[..split]);
            frames.extend(parser.push(&bytes[split..]));
            assert_eq!(frames, expected_stream(), "split at byte {split}");
            assert_eq!(parser.last_event_id(), Some("3"));
        }
    }

    #[test]
    fn byte_by_byte_chunks_give_the_same_frames() {
        let mut parser = SseParser::new();
        let frames: Vec<SseFrame> =
            STREAM.as_bytes().iter().flat_map(|b| parser.push(std::slice::from_ref(b))).collect();
        assert_eq!(frames, expected_stream());
    }

    #[test]
    fn a_crlf_split_across_chunks_ends_only_one_line() {
        let mut parser = SseParser::new();
        assert!(parser.push(b"data: x\r").is_empty());
        // If the `\n` were read as a second line end, this would dispatch.
        assert!(parser.push(b"\n").is_empty());
        assert_eq!(parser.push(b"\r\n"), vec![frame(None, None, "x")]);
    }

    #[test]
    fn the_last_event_id_persists_across_frames_and_an_empty_id_clears_it() {
        let mut parser = SseParser::new();
        let frames = parser.push(b"id: 5\ndata: a\n\ndata: b\n\n");
        assert_eq!(frames, vec![frame(Some("5"), None, "a"), frame(None, None, "b")]);
        assert_eq!(parser.last_event_id(), Some("5"));
        parser.push(b"id\ndata: c\n\n");
        assert_eq!(parser.last_event_id(), None);
    }

    #[test]
    fn an_id_containing_nul_is_ignored() {
        let mut parser = SseParser::resuming_after(Some("4".into()));
        let frames = parser.push(b"id: 9\0\ndata: a\n\n");
        assert_eq!(frames, vec![frame(None, None, "a")]);
        assert_eq!(parser.last_event_id(), Some("4"));
    }

    #[test]
    fn a_frame_with_only_an_id_is_not_an_event_but_moves_the_last_id() {
        let mut parser = SseParser::new();
        assert!(parser.push(b"id: 12\nevent: X\n\n").is_empty());
        assert_eq!(parser.last_event_id(), Some("12"));
        // The event type of the data-less frame does not leak into the next.
        assert_eq!(parser.push(b"data: y\n\n"), vec![frame(None, None, "y")]);
    }

    #[test]
    fn retry_accepts_only_digits_and_unknown_fields_are_ignored() {
        let mut parser = SseParser::new();
        parser.push(b"retry: 2500\nfoo: bar\n\n");
        assert_eq!(parser.retry_ms(), Some(2500));
        parser.push(b"retry: soon\n\n");
        assert_eq!(parser.retry_ms(), Some(2500));
    }

    #[test]
    fn a_utf8_character_split_across_chunks_is_decoded_whole() {
        let bytes = "data: é✓\n\n".as_bytes();
        let mut parser = SseParser::new();
        assert!(parser.push(&bytes[..7]).is_empty());
        assert_eq!(parser.push(&bytes[7..]), vec![frame(None, None, "é✓")]);
    }

    #[test]
    fn a_leading_byte_order_mark_is_skipped() {
        assert_eq!(parse_all(b"\xEF\xBB\xBFdata: x\n\n"), vec![frame(None, None, "x")]);
    }

    #[test]
    fn resetting_the_connection_drops_the_partial_frame_and_its_id() {
        let mut parser = SseParser::new();
        parser.push(b"id: 3\ndata: a\n\nid: 4\ndata: par");
        // Frame 4 never completed, so a reconnect must resume after 3.
        assert_eq!(parser.last_event_id(), Some("3"));
        parser.reset_connection();
        assert_eq!(parser.last_event_id(), Some("3"));
        assert_eq!(parser.push(b"data: b\n\n"), vec![frame(None, None, "b")]);
        assert_eq!(parser.last_event_id(), Some("3"));
    }
}
