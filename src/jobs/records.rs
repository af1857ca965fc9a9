//! Splits an uploaded job file into records of bounded length, without ever holding more than
//! one bounded record in memory.
//!
//! A CSV parser (or a line reader) grows its buffer until the record ends, so one 200 MB cell
//! would cost 200 MB or more. Here the stream is cut into records first: a JSON-lines record
//! ends at a newline; a CSV record ends at a newline outside a quoted field (the same quoting
//! rules as the `csv` crate: a quote opens a quoted field only at the start of a field, `""` is
//! an escaped quote inside one). A record longer than the cap is read to its end and discarded
//! as it streams by; the caller gets its line number and length, and the next record follows.
//! Each bounded record is then parsed on its own (`csv` or `serde_json`).

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// How records end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// At every newline.
    Lines,
    /// At a newline outside a quoted CSV field.
    Csv,
}

/// Where a CSV scan is inside the current record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CsvState {
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: the field's end, or the first half of `""`.
    QuoteInQuoted,
}

impl CsvState {
    fn step(self, b: u8) -> Self {
        match (self, b) {
            (CsvState::FieldStart, b'"') => CsvState::Quoted,
            (CsvState::FieldStart | CsvState::Unquoted | CsvState::QuoteInQuoted, b',') => {
                CsvState::FieldStart
            }
            (CsvState::FieldStart | CsvState::Unquoted, _) => CsvState::Unquoted,
            (CsvState::Quoted, b'"') => CsvState::QuoteInQuoted,
            (CsvState::Quoted, _) => CsvState::Quoted,
            (CsvState::QuoteInQuoted, b'"') => CsvState::Quoted,
            // After a closing quote the csv crate keeps further bytes literally.
            (CsvState::QuoteInQuoted, _) => CsvState::Unquoted,
        }
    }
}

/// One record as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Line the record starts on (1-based).
    pub line: u64,
    /// `Some(bytes)` when the record was longer than the cap: it was discarded, the buffer is
    /// empty.
    pub oversized: Option<u64>,
}

pub struct RecordReader<R> {
    input: R,
    split: Split,
    cap: usize,
    /// Newlines consumed so far.
    newlines: u64,
}

impl<R: AsyncBufRead + Unpin> RecordReader<R> {
    pub fn new(input: R, split: Split, cap: usize) -> Self {
        Self {
            input,
            split,
            cap,
            newlines: 0,
        }
    }

    /// Reads the next record into `buf` (without its line terminator); `None` at the end.
    pub async fn next_record(&mut self, buf: &mut Vec<u8>) -> std::io::Result<Option<Record>> {
        buf.clear();
        let line = self.newlines + 1;
        let mut state = CsvState::FieldStart;
        let mut total = 0u64;
        let mut oversized = false;
        let mut any = false;
        loop {
            let chunk = self.input.fill_buf().await?;
            if chunk.is_empty() {
                if !any {
                    return Ok(None);
                }
                break;
            }
            any = true;
            let mut end = None;
            for (i, &b) in chunk.iter().enumerate() {
                if b == b'\n' {
                    self.newlines += 1;
                    if self.split == Split::Lines || state != CsvState::Quoted {
                        end = Some(i);
                        break;
                    }
                }
                if self.split == Split::Csv {
                    state = state.step(b);
                }
            }
            let content = end.unwrap_or(chunk.len());
            let consumed = end.map_or(chunk.len(), |i| i + 1);
            total += consumed as u64;
            if !oversized {
                if buf.len() + content > self.cap {
                    // Stream the rest of this record past, keeping nothing.
                    oversized = true;
                    buf.clear();
                } else {
                    buf.extend_from_slice(&chunk[..content]);
                }
            }
            self.input.consume(consumed);
            if end.is_some() {
                break;
            }
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        Ok(Some(Record {
            line,
            oversized: oversized.then_some(total),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn records(input: &str, split: Split, cap: usize) -> Vec<(u64, String, Option<u64>)> {
        let mut r = RecordReader::new(
            tokio::io::BufReader::with_capacity(4, input.as_bytes()),
            split,
            cap,
        );
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some(rec) = r.next_record(&mut buf).await.unwrap() {
            out.push((
                rec.line,
                String::from_utf8(buf.clone()).unwrap(),
                rec.oversized,
            ));
        }
        out
    }

    #[tokio::test]
    async fn csv_records_may_span_lines_inside_quotes() {
        let got = records("a,b\r\n\"x\ny\",\"q\"\"\n\"\n3,4", Split::Csv, 100).await;
        assert_eq!(
            got,
            vec![
                (1, "a,b".into(), None),
                (2, "\"x\ny\",\"q\"\"\n\"".into(), None),
                (5, "3,4".into(), None),
            ]
        );
    }

    #[tokio::test]
    async fn a_quote_inside_an_unquoted_field_is_literal() {
        let got = records("a\"b,c\nd,e\n", Split::Csv, 100).await;
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[1], (2, "d,e".into(), None));
    }

    #[tokio::test]
    async fn an_oversized_record_is_skipped_with_its_line_and_length() {
        let big = "x".repeat(50);
        let input = format!("ok\n{big}\n\"{big}\n{big}\"\nafter\n");
        let got = records(&input, Split::Csv, 10).await;
        assert_eq!(got[0], (1, "ok".into(), None));
        assert_eq!(got[1], (2, String::new(), Some(51)));
        assert_eq!(got[2], (3, String::new(), Some(104)));
        assert_eq!(got[3], (5, "after".into(), None));
        let lines = records(&input, Split::Lines, 10).await;
        assert_eq!(lines.len(), 5, "JSON lines end at every newline");
        assert_eq!(lines[4], (5, "after".into(), None));
    }

    #[tokio::test]
    async fn a_record_of_exactly_the_cap_fits() {
        let got = records("0123456789\n", Split::Lines, 10).await;
        assert_eq!(got, vec![(1, "0123456789".into(), None)]);
    }
}
