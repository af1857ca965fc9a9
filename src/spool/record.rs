//! The spool's on-disk record: `[len u32 LE][crc32c u32 LE][payload]`, payload =
//! `[received ms i64 LE][delivery body]`.
//!
//! Pure functions over bytes, so the reader is tested (and property-tested) without files.
//! A record is valid only when its whole payload is present and its CRC-32C matches; the first
//! invalid record ends a file: everything from there on is a torn write (the process died
//! between `write` and `fsync`), which was never acknowledged and is dropped.

/// Bytes before the payload: length and checksum.
pub const HEADER_LEN: usize = 8;
/// Bytes of the payload before the delivery body: the time the adapter accepted it.
const RECEIVED_LEN: usize = 8;
/// A length above this cannot have been written by the adapter (bodies are capped far lower):
/// the header itself is garbage, and nothing is allocated for it.
pub const MAX_PAYLOAD_LEN: usize = 1 << 30;

/// One spooled delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledBatch<'a> {
    /// When the adapter accepted the delivery (ms since the epoch): the entries' `received`.
    pub received_ms: i64,
    /// The delivery body exactly as Okta sent it.
    pub body: &'a [u8],
}

/// Encodes one record.
pub fn encode(received_ms: i64, body: &[u8]) -> Vec<u8> {
    let len = RECEIVED_LEN + body.len();
    let mut out = Vec::with_capacity(HEADER_LEN + len);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&received_ms.to_le_bytes());
    out.extend_from_slice(body);
    let crc = crc32c::crc32c(&out[HEADER_LEN..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Reading `buf` from an offset.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// A valid record; the next one starts at `next`.
    Record {
        batch: SpooledBatch<'a>,
        next: usize,
    },
    /// `buf` ends exactly here.
    End,
    /// The bytes from here on are not a valid record (why, for the log line).
    Torn(&'static str),
}

/// Reads the record at `offset` of `buf`. Never panics, whatever the bytes.
pub fn read_at(buf: &[u8], offset: usize) -> Next<'_> {
    let Some(rest) = buf.get(offset..) else {
        return Next::Torn("offset past the end");
    };
    if rest.is_empty() {
        return Next::End;
    }
    if rest.len() < HEADER_LEN {
        return Next::Torn("incomplete record header");
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if !(RECEIVED_LEN..=MAX_PAYLOAD_LEN).contains(&len) {
        return Next::Torn("record length out of range");
    }
    let Some(payload) = rest.get(HEADER_LEN..HEADER_LEN + len) else {
        return Next::Torn("incomplete record payload");
    };
    if crc32c::crc32c(payload) != crc {
        return Next::Torn("record checksum mismatch");
    }
    let (received, body) = payload.split_at(RECEIVED_LEN);
    let mut ms = [0u8; 8];
    ms.copy_from_slice(received);
    Next::Record {
        batch: SpooledBatch {
            received_ms: i64::from_le_bytes(ms),
            body,
        },
        next: offset + HEADER_LEN + len,
    }
}

/// The valid prefix of a spool file: its records, where they end, and why the rest (if any) was
/// not valid.
#[derive(Debug)]
pub struct Scan<'a> {
    pub records: Vec<SpooledBatch<'a>>,
    /// Length of the valid prefix; the file is truncated to it.
    pub valid_len: usize,
    /// `Some(reason)` when bytes after `valid_len` were dropped.
    pub torn: Option<&'static str>,
}

/// Reads every valid record from the start of `buf`, stopping at the first invalid one.
pub fn scan(buf: &[u8]) -> Scan<'_> {
    let mut records = Vec::new();
    let mut offset = 0;
    loop {
        match read_at(buf, offset) {
            Next::Record { batch, next } => {
                records.push(batch);
                offset = next;
            }
            Next::End => {
                return Scan {
                    records,
                    valid_len: offset,
                    torn: None,
                }
            }
            Next::Torn(why) => {
                return Scan {
                    records,
                    valid_len: offset,
                    torn: Some(why),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn records_read_back_in_order() {
        let mut file = encode(1, b"{\"a\":1}");
        file.extend(encode(2, b""));
        file.extend(encode(-3, b"xyz"));
        let s = scan(&file);
        assert_eq!(s.torn, None);
        assert_eq!(s.valid_len, file.len());
        let got: Vec<_> = s.records.iter().map(|r| (r.received_ms, r.body)).collect();
        assert_eq!(
            got,
            vec![(1, &b"{\"a\":1}"[..]), (2, &b""[..]), (-3, &b"xyz"[..])]
        );
    }

    #[test]
    fn a_torn_or_corrupted_tail_is_cut_at_the_last_valid_record() {
        let first = encode(1, b"first");
        let second = encode(2, b"second");
        let mut file = first.clone();
        file.extend(&second);
        // Cut anywhere inside the second record: only the first survives.
        for cut in first.len() + 1..file.len() {
            let s = scan(&file[..cut]);
            assert_eq!(s.records.len(), 1, "cut at {cut}");
            assert_eq!(s.valid_len, first.len());
            assert!(s.torn.is_some());
        }
        // A flipped bit in the second payload fails its checksum.
        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 1;
        let s = scan(&flipped);
        assert_eq!(
            (s.records.len(), s.torn),
            (1, Some("record checksum mismatch"))
        );
        // A huge length is refused without allocating.
        let mut huge = first.clone();
        huge.extend([0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]);
        assert_eq!(scan(&huge).torn, Some("record length out of range"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Arbitrary bytes never panic, and whatever is read is a prefix that re-encodes to
        /// exactly the bytes it came from.
        #[test]
        fn arbitrary_bytes_never_panic_and_only_valid_prefixes_are_read(
            bytes in proptest::collection::vec(any::<u8>(), 0..512)
        ) {
            let s = scan(&bytes);
            prop_assert!(s.valid_len <= bytes.len());
            let reencoded: Vec<u8> =
                s.records.iter().flat_map(|r| encode(r.received_ms, r.body)).collect();
            prop_assert_eq!(&reencoded[..], &bytes[..s.valid_len]);
            prop_assert_eq!(s.torn.is_none(), s.valid_len == bytes.len());
        }

        /// Valid records followed by any garbage: every valid record survives.
        #[test]
        fn valid_records_survive_any_garbage_tail(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
            garbage in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut file: Vec<u8> = bodies.iter().enumerate()
                .flat_map(|(i, b)| encode(i as i64, b)).collect();
            let good = file.len();
            file.extend(&garbage);
            let s = scan(&file);
            prop_assert!(s.records.len() >= bodies.len());
            prop_assert!(s.valid_len >= good);
            for (r, b) in s.records.iter().zip(&bodies) {
                prop_assert_eq!(r.body, &b[..]);
            }
        }
    }
}
