//! Many rows in one statement, in the form that suits each engine: PostgreSQL reads columns as
//! arrays through `UNNEST` (one parameter a column, whatever the row count), SQLite reads one
//! JSON array of rows through `json_each` (one parameter a statement: SQLite's binding costs
//! grow with the square of a statement's parameters, so a multi-row `VALUES` list of one
//! parameter a cell must stay at a few hundred cells, and its statements ran at a third of
//! the speed of the JSON form). Either way a statement selects from
//! [`Rows::source`], a derived table `u` with the named columns, so one `INSERT ... SELECT`
//! text serves both:
//!
//! ```sql
//! INSERT INTO t (merchant_id, a, b) SELECT $1, u.a, u.b FROM {source} WHERE true ON CONFLICT ...
//! ```
//!
//! (`WHERE true` lets SQLite tell the upsert's `ON CONFLICT` from a join.) Arrays travel as
//! array literals in one text parameter cast to the column's array type, since sqlx's `Any`
//! driver binds no arrays; the literal quotes every text element, so any text round-trips.
//! SQLite's rows are JSON arrays whose elements `->>` reads back as SQL values: a JSON string
//! as text (serde_json escapes it, so any text round-trips), an integer as a 64-bit integer
//! (exact over the whole range), `true`/`false` as 1/0, which is how SQLite stores booleans.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::query::QueryAs;

use super::Backend;

/// A column's SQL type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Text,
    BigInt,
    Bool,
}

impl Kind {
    fn array_type(self) -> &'static str {
        match self {
            Kind::Text => "text[]",
            Kind::BigInt => "bigint[]",
            Kind::Bool => "boolean[]",
        }
    }
}

/// One cell of a row.
#[derive(Debug, Clone, Copy)]
pub(super) enum Cell<'a> {
    Text(&'a str),
    BigInt(i64),
    Bool(bool),
    /// SQL `NULL`, in a column of any kind.
    Null,
}

impl<'a> Cell<'a> {
    pub(super) fn opt_text(text: Option<&'a str>) -> Self {
        text.map_or(Cell::Null, Cell::Text)
    }

    pub(super) fn opt_bigint(n: Option<i64>) -> Self {
        n.map_or(Cell::Null, Cell::BigInt)
    }
}

/// Rows to write: columns named and typed once, then cells row by row.
pub(super) struct Rows<'a> {
    columns: &'static [(&'static str, Kind)],
    cells: Vec<Cell<'a>>,
}

/// Rows per SQLite statement: a few hundred kilobytes of JSON.
const SQLITE_ROWS: usize = 5_000;
/// Rows per PostgreSQL statement: a few hundred kilobytes of array literals.
const POSTGRES_ROWS: usize = 5_000;

impl<'a> Rows<'a> {
    pub(super) fn new(columns: &'static [(&'static str, Kind)]) -> Self {
        Self { columns, cells: Vec::new() }
    }

    /// Appends a row; its cells are in the columns' order and of their kinds.
    pub(super) fn push(&mut self, row: impl IntoIterator<Item = Cell<'a>>) {
        let before = self.cells.len();
        self.cells.extend(row);
        debug_assert_eq!(self.cells.len() - before, self.columns.len(), "a row has a cell per column");
    }

    /// The rows in statements of a size that suits `backend`.
    pub(super) fn chunks(&self, backend: Backend) -> impl Iterator<Item = Chunk<'_, 'a>> {
        let rows = match backend {
            Backend::Sqlite => SQLITE_ROWS,
            Backend::Postgres => POSTGRES_ROWS,
        };
        self.cells.chunks(rows * self.columns.len()).map(move |cells| Chunk { columns: self.columns, cells, backend })
    }
}

/// One statement's rows.
pub(super) struct Chunk<'r, 'a> {
    columns: &'static [(&'static str, Kind)],
    cells: &'r [Cell<'a>],
    backend: Backend,
}

impl Chunk<'_, '_> {
    /// The derived table `u` of these rows, whose parameters are numbered from `first`.
    pub(super) fn source(&self, first: usize) -> String {
        let names = || self.columns.iter().map(|(name, _)| *name);
        match self.backend {
            Backend::Postgres => {
                let arrays: Vec<String> = self
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, kind))| format!("CAST(${} AS {})", first + i, kind.array_type()))
                    .collect();
                format!("UNNEST({}) AS u({})", arrays.join(", "), names().collect::<Vec<_>>().join(", "))
            }
            Backend::Sqlite => {
                let named: Vec<String> =
                    names().enumerate().map(|(i, name)| format!("value ->> {i} AS {name}")).collect();
                format!("(SELECT {} FROM json_each(${first})) AS u", named.join(", "))
            }
        }
    }

    /// Binds the parameters of [`Self::source`], after those already bound.
    pub(super) fn bind<Q: BindText>(&self, mut query: Q) -> Q {
        match self.backend {
            Backend::Postgres => {
                let width = self.columns.len();
                for col in 0..width {
                    let column = self.cells.iter().skip(col).step_by(width);
                    query = query.bind_text(array_literal(column));
                }
                query
            }
            Backend::Sqlite => query.bind_text(json_rows(self.cells, self.columns.len())),
        }
    }
}

/// A query that takes text parameters: either form the rows travel in is text.
pub(super) trait BindText {
    fn bind_text(self, text: String) -> Self;
}

impl<'q> BindText for Query<'q, sqlx::Any, AnyArguments> {
    fn bind_text(self, text: String) -> Self {
        self.bind(text)
    }
}

impl<'q, O> BindText for QueryAs<'q, sqlx::Any, O, AnyArguments> {
    fn bind_text(self, text: String) -> Self {
        self.bind(text)
    }
}

/// The cells as a JSON array of rows of `width` cells: `[["a",1,true],["b",2,false]]`.
fn json_rows(cells: &[Cell<'_>], width: usize) -> String {
    use std::io::Write;
    let mut json: Vec<u8> = Vec::with_capacity(cells.len() * 12 + 2);
    json.push(b'[');
    for (r, row) in cells.chunks(width).enumerate() {
        if r > 0 {
            json.push(b',');
        }
        json.push(b'[');
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                json.push(b',');
            }
            // Writing into a vector cannot fail.
            let _ = match *cell {
                Cell::Text(text) => serde_json::to_writer(&mut json, text).map_err(std::io::Error::other),
                Cell::BigInt(n) => write!(json, "{n}"),
                Cell::Bool(b) => json.write_all(if b { b"true" } else { b"false" }),
                Cell::Null => json.write_all(b"null"),
            };
        }
        json.push(b']');
    }
    json.push(b']');
    String::from_utf8(json).expect("serde_json writes UTF-8")
}

/// A PostgreSQL array literal of the cells: `{"a","b\"c"}`, `{1,2}`, `{t,f}`.
fn array_literal<'c, 'a: 'c>(cells: impl Iterator<Item = &'c Cell<'a>>) -> String {
    let mut literal = String::from("{");
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            literal.push(',');
        }
        match *cell {
            Cell::Text(text) => {
                literal.push('"');
                for c in text.chars() {
                    if c == '"' || c == '\\' {
                        literal.push('\\');
                    }
                    literal.push(c);
                }
                literal.push('"');
            }
            Cell::BigInt(n) => literal.push_str(&n.to_string()),
            Cell::Bool(b) => literal.push(if b { 't' } else { 'f' }),
            Cell::Null => literal.push_str("NULL"),
        }
    }
    literal.push('}');
    literal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_literals_quote_every_text() {
        let cells = [Cell::Text("a"), Cell::Text("b\"c\\d"), Cell::Text(""), Cell::Text("{x,y}"), Cell::Text("NULL")];
        assert_eq!(array_literal(cells.iter()), r#"{"a","b\"c\\d","","{x,y}","NULL"}"#);
        assert_eq!(array_literal([Cell::BigInt(-1), Cell::BigInt(2)].iter()), "{-1,2}");
        assert_eq!(array_literal([Cell::Bool(true), Cell::Bool(false)].iter()), "{t,f}");
        assert_eq!(array_literal([].iter()), "{}");
        assert_eq!(array_literal([Cell::Null, Cell::BigInt(1)].iter()), "{NULL,1}");
    }

    #[test]
    fn json_rows_escape_every_text() {
        let cells = [
            Cell::Text("a\"b\\c\n"),
            Cell::BigInt(i64::MIN),
            Cell::Bool(true),
            Cell::Text(""),
            Cell::BigInt(7),
            Cell::Bool(false),
        ];
        assert_eq!(json_rows(&cells, 3), r#"[["a\"b\\c\n",-9223372036854775808,true],["",7,false]]"#);
        assert_eq!(json_rows(&[], 3), "[]");
        assert_eq!(json_rows(&[Cell::Null], 1), "[[null]]");
    }

    #[test]
    fn sources_number_their_parameters_from_the_first() {
        const COLUMNS: &[(&str, Kind)] = &[("a", Kind::Text), ("b", Kind::BigInt)];
        let mut rows = Rows::new(COLUMNS);
        rows.push([Cell::Text("x"), Cell::BigInt(1)]);
        rows.push([Cell::Text("y"), Cell::BigInt(2)]);
        let chunk = rows.chunks(Backend::Sqlite).next().unwrap();
        assert_eq!(chunk.source(2), "(SELECT value ->> 0 AS a, value ->> 1 AS b FROM json_each($2)) AS u");
        let chunk = rows.chunks(Backend::Postgres).next().unwrap();
        assert_eq!(chunk.source(2), "UNNEST(CAST($2 AS text[]), CAST($3 AS bigint[])) AS u(a, b)");
    }
}
