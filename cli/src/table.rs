//! Tables on stdout (`ls`): a bold header line, columns two spaces apart and as wide as their
//! widest cell (counted in characters), left- or right-aligned, trailing spaces trimmed, and a
//! colour per cell when stdout wants colour. Cells hold text already made terminal-safe by the
//! caller ([`crate::safe`]).

use std::borrow::Cow;
use std::io::{self, Write};

use crate::color::{paint, BOLD};

/// How a column's cells line up. Headers are always left-aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// One cell: its text and, optionally, its colour (an SGR code such as `"32"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    text: String,
    sgr: Option<&'static str>,
}

impl Cell {
    /// A cell drawn in colour `sgr` when colour is on (padding included).
    pub fn painted(text: impl Into<String>, sgr: &'static str) -> Cell {
        Cell {
            text: text.into(),
            sgr: Some(sgr),
        }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell { text, sgr: None }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::from(text.to_owned())
    }
}

/// A table being filled row by row, then written at once (widths need every row).
#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<(Cow<'static, str>, Align)>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// A table with these column headers and alignments.
    pub fn new(columns: &[(&'static str, Align)]) -> Table {
        Table {
            columns: columns
                .iter()
                .map(|&(h, a)| (Cow::Borrowed(h), a))
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a column after the others, with a header made at run time (`ls --columns`).
    pub fn add_column(&mut self, header: impl Into<Cow<'static, str>>, align: Align) {
        self.columns.push((header.into(), align));
    }

    /// Appends a row; cells past the last column are ignored.
    pub fn push(&mut self, cells: impl IntoIterator<Item = Cell>) {
        self.rows.push(cells.into_iter().collect());
    }

    /// Writes the header line and every row, coloured when `color`.
    pub fn write(&self, out: &mut impl Write, color: bool) -> io::Result<()> {
        let mut widths: Vec<usize> = self
            .columns
            .iter()
            .map(|(h, _)| h.chars().count())
            .collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.text.chars().count());
            }
        }
        let header: Vec<String> = self
            .columns
            .iter()
            .zip(&widths)
            .map(|((h, _), &w)| format!("{:<w$}", h.as_ref()))
            .collect();
        writeln!(out, "{}", paint(color, BOLD, header.join("  ").trim_end()))?;
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .zip(self.columns.iter().zip(&widths))
                .map(|(cell, ((_, align), &w))| {
                    let text = &cell.text;
                    let padded = match align {
                        Align::Left => format!("{text:<w$}"),
                        Align::Right => format!("{text:>w$}"),
                    };
                    match cell.sgr {
                        Some(sgr) => paint(color, sgr, &padded),
                        None => padded,
                    }
                })
                .collect();
            writeln!(out, "{}", cells.join("  ").trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(&[
            ("NAME", Align::Left),
            ("STATUS", Align::Left),
            ("N", Align::Right),
            ("NOTE", Align::Left),
        ]);
        t.push([
            "ünï".into(),
            Cell::painted("ok", "32"),
            "7".into(),
            "".into(),
        ]);
        t.push([
            "b".into(),
            Cell::painted("failed", "1;31"),
            "1234".into(),
            "x".into(),
        ]);
        t
    }

    fn written(t: &Table, color: bool) -> String {
        let mut out = Vec::new();
        t.write(&mut out, color).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn plain_columns_align_and_trailing_spaces_go() {
        assert_eq!(
            written(&sample(), false),
            "NAME  STATUS  N     NOTE\n\
             ünï   ok         7\n\
             b     failed  1234  x\n"
        );
    }

    #[test]
    fn colour_wraps_the_header_and_the_padded_cell() {
        assert_eq!(
            written(&sample(), true),
            "\x1b[1mNAME  STATUS  N     NOTE\x1b[0m\n\
             ünï   \x1b[32mok    \x1b[0m     7\n\
             b     \x1b[1;31mfailed\x1b[0m  1234  x\n"
        );
    }

    #[test]
    fn an_empty_table_is_its_header() {
        let t = Table::new(&[("A", Align::Left), ("B", Align::Right)]);
        assert_eq!(written(&t, false), "A  B\n");
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let mut t = Table::new(&[("K", Align::Left), ("V", Align::Left)]);
        t.push(["é".into(), "v".into()]);
        t.push(["ab".into(), "w".into()]);
        // "é" is two bytes but one character: padded to the width of "ab".
        assert_eq!(written(&t, false), "K   V\né   v\nab  w\n");
    }
}
