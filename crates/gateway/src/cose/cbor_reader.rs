//! A pull reader over one message's bytes (RFC 8949), on ciborium's low-level decoder: the
//! parser asks for the item it expects next and gets its header, byte strings are copied
//! once into the buffer the message keeps, and everything the gateway ignores is skipped
//! without being built. Decoding whole messages into `ciborium::Value` trees (twice: the
//! envelope, then the protected header) was the largest avoidable cost on the per-message
//! path (docs/benchmarks.md, "COSE read without value trees").
//!
//! Every length is checked against the bytes that remain before anything is allocated, and
//! nesting is bounded, so hostile sizes and depths are refused as `bad_cbor`.

use ciborium_ll::{Decoder, Header};

use crate::error::GatewayError;

/// Deepest nesting of arrays, maps and tags inside an ignored value. Nothing a device
/// sends nests; the bound keeps a hostile message from exhausting the stack.
const MAX_DEPTH: usize = 64;

/// CBOR simple value `null` (RFC 8949 §3.3).
pub(super) const NULL: u8 = 22;

/// A COSE header label (RFC 9052 §3): an integer or a text string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Label {
    Int(i64),
    Text(String),
}

/// The labels of one map seen so far, to refuse a label that appears twice
/// (RFC 9052 §3). Maps in a message have a handful of entries, so a scan is enough.
#[derive(Default)]
pub(super) struct SeenLabels(Vec<Label>);

impl SeenLabels {
    /// Records `label`; `false` if it was already there.
    pub(super) fn insert(&mut self, label: &Label) -> bool {
        if self.0.contains(label) {
            return false;
        }
        self.0.push(label.clone());
        true
    }
}

pub(super) struct Reader<'a> {
    decoder: Decoder<&'a [u8]>,
    len: usize,
}

fn bad_cbor<E>(_: E) -> GatewayError {
    GatewayError::Malformed("bad_cbor")
}

/// The value of an integer header (major types 0 and 1): `Some(None)` for one that does not
/// fit an `i64`, `None` for any other header.
pub(super) fn integer(header: Header) -> Option<Option<i64>> {
    match header {
        Header::Positive(n) => Some(i64::try_from(n).ok()),
        // RFC 8949 §3.1: major type 1 encodes -1 - n.
        Header::Negative(n) => Some(i64::try_from(n).ok().map(|n| -1 - n)),
        _ => None,
    }
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self {
            decoder: Decoder::from(bytes),
            len: bytes.len(),
        }
    }

    /// The next item's header.
    pub(super) fn header(&mut self) -> Result<Header, GatewayError> {
        self.decoder.pull().map_err(bad_cbor)
    }

    /// Where the next item starts.
    pub(super) fn offset(&mut self) -> usize {
        self.decoder.offset()
    }

    /// Whether every byte was read.
    pub(super) fn at_end(&mut self) -> bool {
        self.decoder.offset() == self.len
    }

    fn remaining(&mut self) -> usize {
        self.len.saturating_sub(self.decoder.offset())
    }

    /// A count of items that cannot all fit in what remains (each takes at least a byte)
    /// is refused before anything loops over it.
    pub(super) fn check_count(&mut self, items: usize) -> Result<(), GatewayError> {
        if items > self.remaining() {
            return Err(GatewayError::Malformed("bad_cbor"));
        }
        Ok(())
    }

    /// The next `len` bytes (the contents of a definite-length string), checked against
    /// what remains before anything is allocated.
    fn definite(&mut self, len: usize) -> Result<Vec<u8>, GatewayError> {
        self.check_count(len)?;
        let mut out = vec![0; len];
        ciborium_io::Read::read_exact(&mut self.decoder, &mut out).map_err(bad_cbor)?;
        Ok(out)
    }

    /// The contents of the byte string whose header (`Header::Bytes(len)`) was just read.
    pub(super) fn bytes(&mut self, len: Option<usize>) -> Result<Vec<u8>, GatewayError> {
        if let Some(len) = len {
            return self.definite(len);
        }
        let mut out = Vec::new();
        let mut buffer = [0u8; 256];
        let mut segments = self.decoder.bytes(None);
        while let Some(mut segment) = segments.pull().map_err(bad_cbor)? {
            while let Some(chunk) = segment.pull(&mut buffer).map_err(bad_cbor)? {
                out.extend_from_slice(chunk);
            }
        }
        Ok(out)
    }

    /// The contents of the text string whose header (`Header::Text(len)`) was just read;
    /// invalid UTF-8 is malformed CBOR.
    pub(super) fn text(&mut self, len: Option<usize>) -> Result<String, GatewayError> {
        if let Some(len) = len {
            return String::from_utf8(self.definite(len)?).map_err(bad_cbor);
        }
        let mut out = String::new();
        let mut buffer = [0u8; 256];
        let mut segments = self.decoder.text(None);
        while let Some(mut segment) = segments.pull().map_err(bad_cbor)? {
            while let Some(chunk) = segment.pull(&mut buffer).map_err(bad_cbor)? {
                out.push_str(chunk);
            }
        }
        Ok(out)
    }

    /// A map key read as a COSE label. `Ok(None)`: a well-formed key that is not a label
    /// (skipped, so the caller can report it after the rest is read).
    pub(super) fn label(&mut self) -> Result<Option<Label>, GatewayError> {
        let header = self.header()?;
        if let Some(n) = integer(header) {
            return Ok(n.map(Label::Int));
        }
        Ok(match header {
            Header::Text(len) => Some(Label::Text(self.text(len)?)),
            other => {
                self.skip(other)?;
                None
            }
        })
    }

    /// Skips the item whose header was just read, and everything nested in it.
    pub(super) fn skip(&mut self, header: Header) -> Result<(), GatewayError> {
        self.skip_at(header, 0)
    }

    fn skip_at(&mut self, header: Header, depth: usize) -> Result<(), GatewayError> {
        if depth > MAX_DEPTH {
            return Err(GatewayError::Malformed("bad_cbor"));
        }
        match header {
            Header::Positive(_) | Header::Negative(_) | Header::Float(_) | Header::Simple(_) => {
                Ok(())
            }
            Header::Break => Err(GatewayError::Malformed("bad_cbor")),
            Header::Bytes(len) => self.bytes(len).map(drop),
            Header::Text(len) => self.text(len).map(drop),
            Header::Tag(_) => {
                let inner = self.header()?;
                self.skip_at(inner, depth + 1)
            }
            Header::Array(len) => self.skip_items(len, 1, depth),
            Header::Map(len) => self.skip_items(len, 2, depth),
        }
    }

    /// Skips the items of an array (`per_entry` 1) or map (2) of `len` entries, or up to its
    /// break when the length is indefinite.
    fn skip_items(
        &mut self,
        len: Option<usize>,
        per_entry: usize,
        depth: usize,
    ) -> Result<(), GatewayError> {
        match len {
            Some(len) => {
                let items = len.checked_mul(per_entry).ok_or(bad_cbor(()))?;
                self.check_count(items)?;
                for _ in 0..items {
                    let header = self.header()?;
                    self.skip_at(header, depth + 1)?;
                }
            }
            None => loop {
                let header = self.header()?;
                if header == Header::Break {
                    break;
                }
                self.skip_at(header, depth + 1)?;
                if per_entry == 2 {
                    let value = self.header()?;
                    self.skip_at(value, depth + 1)?;
                }
            },
        }
        Ok(())
    }

    /// Walks the entries of a map whose header (`Header::Map(len)`) was just read, giving
    /// `entry` each key and leaving it to read (or skip) the value.
    pub(super) fn map_entries(
        &mut self,
        len: Option<usize>,
        mut entry: impl FnMut(&mut Self, Option<Label>) -> Result<(), GatewayError>,
    ) -> Result<(), GatewayError> {
        match len {
            Some(len) => {
                self.check_count(len.checked_mul(2).ok_or(bad_cbor(()))?)?;
                for _ in 0..len {
                    let label = self.label()?;
                    entry(self, label)?;
                }
            }
            None => loop {
                let header = self.header()?;
                if header == Header::Break {
                    break;
                }
                self.decoder.push(header);
                let label = self.label()?;
                entry(self, label)?;
            },
        }
        Ok(())
    }

    /// Walks the items of an array whose header (`Header::Array(len)`) was just read,
    /// giving `item` each item's header.
    pub(super) fn array_items(
        &mut self,
        len: Option<usize>,
        mut item: impl FnMut(&mut Self, Header) -> Result<(), GatewayError>,
    ) -> Result<(), GatewayError> {
        match len {
            Some(len) => {
                self.check_count(len)?;
                for _ in 0..len {
                    let header = self.header()?;
                    item(self, header)?;
                }
            }
            None => loop {
                let header = self.header()?;
                if header == Header::Break {
                    break;
                }
                item(self, header)?;
            },
        }
        Ok(())
    }
}
