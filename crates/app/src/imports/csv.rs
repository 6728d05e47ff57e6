//! Reading an import file: UTF-8 with or without a byte-order mark, `,` or `;` between fields,
//! quoted fields (with quotes, separators and line breaks inside). Every record is checked for
//! what makes it unreadable — not UTF-8, a NUL byte, the wrong number of fields — and those
//! rows are reported, never passed on; the header decides the columns.

use std::sync::atomic::{AtomicU64, Ordering};

use depot_domain::Validator;
use depot_domain::import::{Header, ImportKind, RowError, sniff_delimiter, strip_bom};

/// A file whose header has been read and found right for its kind.
pub(crate) struct CsvFile<'a> {
    data: &'a [u8],
    delimiter: u8,
    pub header: Header,
    /// Most errors kept (a file of nothing but bad rows must not take memory without bound).
    limit: usize,
    /// Errors found beyond `limit`: counted, not kept.
    dropped: AtomicU64,
}

fn reader(data: &[u8], delimiter: u8) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(data)
}

impl<'a> CsvFile<'a> {
    /// Reads the header of `data` for `kind`: every problem with it, or the file.
    pub fn open(kind: ImportKind, data: &'a [u8], limit: usize) -> Result<Self, Vec<RowError>> {
        let data = strip_bom(data);
        let delimiter = sniff_delimiter(data);
        let mut record = csv::ByteRecord::new();
        let read = reader(data, delimiter).read_byte_record(&mut record);
        let header_error =
            |message: &str| vec![RowError::new(1, None, "import.invalid_header", message)];
        match read {
            Ok(true) => {}
            Ok(false) => return Err(header_error("the file is empty: it needs a header row")),
            Err(_) => return Err(header_error("the header row is not readable CSV")),
        }
        let mut names = Vec::with_capacity(record.len());
        for field in record.iter() {
            match std::str::from_utf8(field) {
                Ok(name) if !name.contains('\0') => names.push(name),
                _ => return Err(header_error("the header row is not UTF-8 text")),
            }
        }
        let header = Header::parse(kind, &names)?;
        Ok(Self {
            data,
            delimiter,
            header,
            limit,
            dropped: AtomicU64::new(0),
        })
    }

    /// Keeps `error` in `errors` while fewer than the limit are kept; counts it otherwise.
    pub fn keep(&self, errors: &mut Vec<RowError>, error: RowError) {
        if errors.len() < self.limit {
            errors.push(error);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Keeps a row's field errors (each field its column), as [`Self::keep`].
    pub fn keep_fields(&self, errors: &mut Vec<RowError>, row: u64, v: Validator) {
        for e in v.into_errors() {
            self.keep(errors, RowError::of_field(row, e));
        }
    }

    /// How many errors were counted but not kept since the last [`Self::restart`].
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Counts `n` errors found but not kept elsewhere (a pass's unreadable rows past the limit).
    pub fn count_unkept(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Forgets the errors counted so far (a check starting over).
    pub fn restart(&self) {
        self.dropped.store(0, Ordering::Relaxed);
    }

    /// Calls `each(row, cells)` for every readable data row, in order, and returns the rows
    /// that are not readable (each with why, at most the limit) and how many there were. A row
    /// of only empty fields is skipped.
    pub fn rows(&self, each: impl FnMut(u64, &[&str])) -> (Vec<RowError>, u64) {
        let (errors, unreadable, _) = self.rows_from(Mark::START, usize::MAX, each);
        (errors, unreadable)
    }

    /// As [`Self::rows`], from `from` and for at most `records` data records (readable or
    /// not); also where the records after them start, if there are any.
    pub fn rows_from(
        &self,
        from: Mark,
        records: usize,
        mut each: impl FnMut(u64, &[&str]),
    ) -> (Vec<RowError>, u64, Option<Mark>) {
        let mut errors = Vec::new();
        let mut unreadable = 0u64;
        let mut note = |errors: &mut Vec<RowError>, error: RowError| {
            unreadable += 1;
            if errors.len() < self.limit {
                errors.push(error);
            }
        };
        let start = from.byte.min(self.data.len());
        let mut reader = reader(&self.data[start..], self.delimiter);
        let mut record = csv::ByteRecord::new();
        let mut first = start == 0;
        let mut taken = 0usize;
        // The line a record starts on, counted from the bytes (the reader does not count the
        // blank lines it skips): 1 + the line breaks before it.
        let (mut counted_to, mut line) = (start, from.line);
        let mut line_at = |relative: u64| {
            let mut byte = usize::try_from(relative)
                .unwrap_or(usize::MAX)
                .saturating_add(start)
                .min(self.data.len());
            // A record's position is where the reader started looking: past blank lines.
            while matches!(self.data.get(byte), Some(b'\n' | b'\r')) {
                byte += 1;
            }
            if byte > counted_to {
                line += self.data[counted_to..byte]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count() as u64;
                counted_to = byte;
            }
            line
        };
        loop {
            let row = line_at(reader.position().byte());
            if taken == records {
                // `line_at` moved `counted_to` to where the next record starts.
                let at = Mark {
                    byte: counted_to,
                    line: row,
                };
                let more = at.byte < self.data.len();
                return (errors, unreadable, more.then_some(at));
            }
            match reader.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    note(
                        &mut errors,
                        RowError::new(
                            row,
                            None,
                            "import.unreadable_row",
                            format!("not readable CSV: {e}"),
                        ),
                    );
                    taken += 1;
                    continue;
                }
            }
            let row = record.position().map_or(row, |p| line_at(p.byte()));
            if std::mem::take(&mut first) {
                continue; // the header
            }
            if record.iter().all(<[u8]>::is_empty) {
                continue;
            }
            taken += 1;
            if record.len() != self.header.width() {
                note(
                    &mut errors,
                    RowError::new(
                        row,
                        None,
                        "import.field_count",
                        format!(
                            "has {} fields; the header has {}",
                            record.len(),
                            self.header.width()
                        ),
                    ),
                );
                continue;
            }
            let mut cells: Vec<&str> = Vec::with_capacity(record.len());
            let mut readable = true;
            for (i, field) in record.iter().enumerate() {
                let column = self.header.name_at(i);
                match std::str::from_utf8(field) {
                    Ok(text) if text.contains('\0') => {
                        note(
                            &mut errors,
                            RowError::new(row, column, "import.nul_byte", "contains a NUL byte"),
                        );
                        readable = false;
                    }
                    Ok(text) => cells.push(text),
                    Err(_) => {
                        note(
                            &mut errors,
                            RowError::new(row, column, "import.not_utf8", "is not UTF-8 text"),
                        );
                        readable = false;
                    }
                }
            }
            if readable {
                each(row, &cells);
            }
        }
        (errors, unreadable, None)
    }
}

/// Where a file's rows are read from: a record's first byte, and its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    byte: usize,
    line: u64,
}

impl Mark {
    /// The start of the file (its header).
    pub const START: Mark = Mark { byte: 0, line: 1 };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(kind: ImportKind, data: &[u8]) -> (Vec<(u64, Vec<String>)>, Vec<RowError>) {
        let file = CsvFile::open(kind, data, 100).expect("header");
        let mut rows = Vec::new();
        let (errors, count) = file.rows(|row, cells| {
            rows.push((row, cells.iter().map(|c| (*c).to_owned()).collect()));
        });
        assert_eq!(count, errors.len() as u64);
        (rows, errors)
    }

    #[test]
    fn reads_quoted_fields_semicolons_and_a_bom() {
        let data = "\u{feff}code;name;address\nA;\"Main; north\";\"1 Road\nTown\"\n\nB;Two;\n";
        let (rows, errors) = read(ImportKind::Locations, data.as_bytes());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            rows,
            vec![
                (
                    2,
                    vec!["A".into(), "Main; north".into(), "1 Road\nTown".into()]
                ),
                (5, vec!["B".into(), "Two".into(), String::new()]),
            ]
        );
    }

    #[test]
    fn reports_unreadable_rows_and_passes_the_rest_on() {
        let mut data = b"code,name\nA,One\nB\nC,T\x00wo\nD,\xff\xfe\nE,Five\n".to_vec();
        data.extend_from_slice(b"F,Six,extra\n");
        let (rows, errors) = read(ImportKind::Locations, &data);
        let ok: Vec<u64> = rows.iter().map(|(r, _)| *r).collect();
        assert_eq!(ok, vec![2, 6]);
        let found: Vec<(u64, Option<&str>, &str)> = errors
            .iter()
            .map(|e| (e.row, e.column.as_deref(), e.code.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![
                (3, None, "import.field_count"),
                (4, Some("name"), "import.nul_byte"),
                (5, Some("name"), "import.not_utf8"),
                (7, None, "import.field_count"),
            ]
        );
    }

    #[test]
    fn rows_read_a_chunk_at_a_time_are_the_rows_read_at_once() {
        let mut data = b"code;name\nA;\"One\n1\"\n\n\nB\n;\nC;T\x00wo\n".to_vec();
        data.extend_from_slice(b"D;Four\r\n\r\nE;\"Fi;ve\"\nF;Six\n\n");
        let file = CsvFile::open(ImportKind::Locations, &data, 100).expect("header");
        let mut whole = Vec::new();
        let (whole_errors, whole_count) =
            file.rows(|row, cells| whole.push((row, cells.join("|"))));
        assert_eq!(whole.len(), 4);
        for size in 1..=5 {
            let (mut rows, mut errors, mut count) = (Vec::new(), Vec::new(), 0);
            let mut mark = Some(Mark::START);
            let mut chunks = 0;
            while let Some(from) = mark {
                let (e, n, next) =
                    file.rows_from(from, size, |row, cells| rows.push((row, cells.join("|"))));
                errors.extend(e);
                count += n;
                mark = next;
                chunks += 1;
            }
            assert_eq!(rows, whole, "chunks of {size}");
            assert_eq!(errors, whole_errors, "chunks of {size}");
            assert_eq!(count, whole_count);
            assert!(
                chunks >= 6_usize.div_ceil(size),
                "chunks of {size}: {chunks}"
            );
        }
    }

    #[test]
    fn errors_past_the_limit_are_counted_not_kept() {
        let data = format!("code,name\n{}", "x\n".repeat(50));
        let file = CsvFile::open(ImportKind::Locations, data.as_bytes(), 10).expect("header");
        let (errors, count) = file.rows(|_, _| {});
        assert_eq!((errors.len(), count), (10, 50));
        let mut kept = Vec::new();
        for row in 0..15 {
            file.keep(&mut kept, RowError::new(row, None, "x", "x"));
        }
        assert_eq!((kept.len(), file.dropped()), (10, 5));
        file.restart();
        assert_eq!(file.dropped(), 0);
    }

    #[test]
    fn an_empty_file_or_a_bad_header_is_refused() {
        let empty = CsvFile::open(ImportKind::Products, b"", 100)
            .err()
            .expect("empty");
        assert_eq!(empty[0].code, "import.invalid_header");
        let unknown = CsvFile::open(ImportKind::Products, b"sku,name,colour\n", 100)
            .err()
            .expect("unknown column");
        assert_eq!(unknown[0].code, "import.unknown_column");
        assert_eq!(unknown[0].column.as_deref(), Some("colour"));
    }
}
