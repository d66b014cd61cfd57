//! Rows in the text format of `COPY ... FROM STDIN` (PostgreSQL docs, "COPY", File Formats):
//! tab-separated columns, one line per row, `\N` for NULL, and backslash escapes for the
//! characters that would otherwise end a column or a row. Used for bulk loads, where COPY
//! skips per-statement parsing and planning entirely.

use std::fmt::Write as _;

/// One row being written into a COPY buffer.
pub(super) struct CopyRow<'a> {
    buf: &'a mut String,
    first: bool,
}

impl<'a> CopyRow<'a> {
    /// Starts a row at the end of `buf`.
    pub fn start(buf: &'a mut String) -> Self {
        Self { buf, first: true }
    }

    fn separate(&mut self) {
        if !self.first {
            self.buf.push('\t');
        }
        self.first = false;
    }

    /// A text value, escaped so tabs, newlines and backslashes in it stay inside the column.
    pub fn text(&mut self, value: &str) -> &mut Self {
        self.separate();
        for ch in value.chars() {
            match ch {
                '\\' => self.buf.push_str("\\\\"),
                '\t' => self.buf.push_str("\\t"),
                '\n' => self.buf.push_str("\\n"),
                '\r' => self.buf.push_str("\\r"),
                _ => self.buf.push(ch),
            }
        }
        self
    }

    pub fn opt_text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.text(v),
            None => self.null(),
        }
    }

    pub fn int(&mut self, value: i64) -> &mut Self {
        self.separate();
        // Writing to a String cannot fail.
        let _ = write!(self.buf, "{value}");
        self
    }

    pub fn boolean(&mut self, value: bool) -> &mut Self {
        self.separate();
        self.buf.push(if value { 't' } else { 'f' });
        self
    }

    /// A `bytea` in hex form (`\x0aff`), its backslash doubled for the COPY layer.
    pub fn opt_bytes(&mut self, value: Option<&[u8]>) -> &mut Self {
        let Some(bytes) = value else {
            return self.null();
        };
        self.separate();
        self.buf.push_str("\\\\x");
        self.buf.push_str(&portcullis_core::hex::encode(bytes));
        self
    }

    pub fn null(&mut self) -> &mut Self {
        self.separate();
        self.buf.push_str("\\N");
        self
    }

    /// Ends the row.
    pub fn end(&mut self) {
        self.buf.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_and_backslashes_inside_values_are_escaped() {
        let mut buf = String::new();
        CopyRow::start(&mut buf)
            .text("a\tb\nc\rd\\e ü")
            .opt_text(None)
            .int(-42)
            .boolean(true)
            .opt_bytes(Some(&[0, 1, 255]))
            .opt_bytes(None)
            .end();
        assert_eq!(buf, "a\\tb\\nc\\rd\\\\e ü\t\\N\t-42\tt\t\\\\x0001ff\t\\N\n");
    }
}
