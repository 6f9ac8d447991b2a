//! Many rows in one statement, in the form that suits each engine: PostgreSQL reads columns as
//! arrays through `UNNEST` (one parameter a column, whatever the row count), SQLite reads a
//! multi-row `VALUES` list (one parameter a cell). Either way a statement selects from
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

use sqlx::any::AnyArguments;
use sqlx::query::Query;

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
}

/// Rows to write: columns named and typed once, then cells row by row.
pub(super) struct Rows<'a> {
    columns: &'static [(&'static str, Kind)],
    cells: Vec<Cell<'a>>,
}

/// Parameters per SQLite statement. Few: SQLite finds a numbered parameter's name by walking
/// the statement's list of them (`sqlite3_bind_parameter_name`, which sqlx calls for each),
/// so binding costs grow with the square of the count: 8,000 parameters a statement ran at a
/// tenth of the speed of 500.
const SQLITE_PARAMETERS: usize = 500;
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
            Backend::Sqlite => (SQLITE_PARAMETERS / self.columns.len()).max(1),
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
                let width = self.columns.len();
                let rows: Vec<String> = (0..self.cells.len() / width)
                    .map(|row| {
                        let cells: Vec<String> =
                            (0..width).map(|col| format!("${}", first + row * width + col)).collect();
                        format!("({})", cells.join(", "))
                    })
                    .collect();
                let named: Vec<String> =
                    names().enumerate().map(|(i, name)| format!("column{} AS {name}", i + 1)).collect();
                format!("(SELECT {} FROM (VALUES {})) AS u", named.join(", "), rows.join(", "))
            }
        }
    }

    /// Binds the parameters of [`Self::source`], after those already bound.
    pub(super) fn bind<'q>(&self, mut query: Query<'q, sqlx::Any, AnyArguments>) -> Query<'q, sqlx::Any, AnyArguments> {
        match self.backend {
            Backend::Postgres => {
                let width = self.columns.len();
                for col in 0..width {
                    let column = self.cells.iter().skip(col).step_by(width);
                    query = query.bind(array_literal(column));
                }
                query
            }
            Backend::Sqlite => {
                for cell in self.cells {
                    query = match *cell {
                        Cell::Text(text) => query.bind(text.to_owned()),
                        Cell::BigInt(n) => query.bind(n),
                        Cell::Bool(b) => query.bind(b),
                    };
                }
                query
            }
        }
    }
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
    }

    #[test]
    fn sources_number_their_parameters_from_the_first() {
        const COLUMNS: &[(&str, Kind)] = &[("a", Kind::Text), ("b", Kind::BigInt)];
        let mut rows = Rows::new(COLUMNS);
        rows.push([Cell::Text("x"), Cell::BigInt(1)]);
        rows.push([Cell::Text("y"), Cell::BigInt(2)]);
        let chunk = rows.chunks(Backend::Sqlite).next().unwrap();
        assert_eq!(chunk.source(2), "(SELECT column1 AS a, column2 AS b FROM (VALUES ($2, $3), ($4, $5))) AS u");
        let chunk = rows.chunks(Backend::Postgres).next().unwrap();
        assert_eq!(chunk.source(2), "UNNEST(CAST($2 AS text[]), CAST($3 AS bigint[])) AS u(a, b)");
    }
}
