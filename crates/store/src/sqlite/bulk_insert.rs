//! Multi-row INSERTs for bulk writes (client imports, audit batches, device lists). Each
//! statement is a round trip to SQLite's worker thread, so sending hundreds of rows per
//! statement instead of one is what makes a million-client load take seconds rather than
//! minutes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, Row, SqliteConnection};

use crate::StoreError;

/// SQLite (3.32+) accepts at most 32 766 bound parameters per statement; staying well below
/// keeps statements small enough to prepare quickly.
const MAX_PARAMETERS: usize = 4096;
/// Statements below the full size carry a multiple of this many rows, or fewer than it.
const SIZE_STEP: usize = 16;

/// The shape of one table's INSERT.
pub(super) struct BulkInsert {
    pub table: &'static str,
    /// Column names, comma separated, in the order the binder adds them.
    pub columns: &'static str,
    pub column_count: usize,
    /// Appended to every statement: `""`, or an `ON CONFLICT ... RETURNING ...` clause for
    /// [`run_returning`](Self::run_returning).
    pub suffix: &'static str,
}

impl BulkInsert {
    fn rows_per_statement(&self) -> usize {
        (MAX_PARAMETERS / self.column_count.max(1)).max(1)
    }

    /// The INSERT for `rows` rows, built once per shape and size and kept: an audit batch
    /// sends one to three of them per commit, and writing a 455-row text afresh each time
    /// (12 KB) cost 0.5 % of the token path's CPU. [`statement_sizes`](Self::statement_sizes)
    /// bounds how many sizes a table ever uses, so the cache stays small.
    fn sql(&self, rows: usize) -> Arc<str> {
        type Key = (&'static str, &'static str, &'static str, usize);
        static TEXTS: Mutex<Option<HashMap<Key, Arc<str>>>> = Mutex::new(None);
        let key = (self.table, self.columns, self.suffix, rows);
        let mut texts = TEXTS.lock().unwrap_or_else(PoisonError::into_inner);
        let texts = texts.get_or_insert_with(HashMap::new);
        Arc::clone(
            texts
                .entry(key)
                .or_insert_with(|| Arc::from(self.write_sql(rows))),
        )
    }

    /// The INSERT for `rows` rows, written into one buffer.
    fn write_sql(&self, rows: usize) -> String {
        let placeholders = self.column_count.max(1) * 3;
        let mut sql = String::with_capacity(
            40 + self.table.len() + self.columns.len() + self.suffix.len() + rows * placeholders,
        );
        sql.push_str("INSERT INTO ");
        sql.push_str(self.table);
        sql.push_str(" (");
        sql.push_str(self.columns);
        sql.push_str(") VALUES ");
        for row in 0..rows {
            if row > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for column in 0..self.column_count {
                if column > 0 {
                    sql.push_str(", ");
                }
                sql.push('?');
            }
            sql.push(')');
        }
        sql.push_str(self.suffix);
        sql
    }

    /// Runs the INSERT of `rows` rows whose columns `args` holds (from
    /// [`arguments_for`](Self::arguments_for), filled in `columns` order): for a caller that
    /// builds each statement's rows itself rather than from a slice of items.
    pub async fn execute<'a>(
        &self,
        conn: &mut SqliteConnection,
        rows: usize,
        args: SqliteArguments<'a>,
    ) -> Result<(), StoreError> {
        sqlx::query_with(&self.sql(rows), args)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Empty arguments with room for `rows` rows: filling a 4 096-parameter statement from
    /// nothing would reallocate (and copy) its values a dozen times.
    pub fn arguments_for<'a>(&self, rows: usize) -> SqliteArguments<'a> {
        let mut args = SqliteArguments::default();
        args.reserve(rows * self.column_count, 0);
        args
    }

    /// Inserts `items` on `conn`, `bind` adding each item's columns in `columns` order, in
    /// statements of [`statement_sizes`](Self::statement_sizes) rows.
    pub async fn run<'a, T>(
        &self,
        conn: &mut SqliteConnection,
        items: &'a [T],
        bind: impl Fn(&mut SqliteArguments<'a>, &'a T) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for chunk in self.chunks(items) {
            let args = self.arguments(chunk, &bind)?;
            self.execute(conn, chunk.len(), args).await?;
        }
        Ok(())
    }

    /// Like [`run`](Self::run), for a `suffix` with `RETURNING` one text column: returns
    /// that column of every row the statements returned (the rows actually inserted, when the
    /// suffix is `ON CONFLICT DO NOTHING RETURNING key`).
    pub async fn run_returning<'a, T>(
        &self,
        conn: &mut SqliteConnection,
        items: &'a [T],
        bind: impl Fn(&mut SqliteArguments<'a>, &'a T) -> Result<(), StoreError>,
    ) -> Result<Vec<String>, StoreError> {
        let mut returned = Vec::new();
        for chunk in self.chunks(items) {
            let args = self.arguments(chunk, &bind)?;
            let found = sqlx::query_with(&self.sql(chunk.len()), args)
                .fetch_all(&mut *conn)
                .await?;
            for row in found {
                returned.push(row.try_get::<String, _>(0)?);
            }
        }
        Ok(returned)
    }

    /// How many rows each statement for `total` rows carries: full statements, then the rest
    /// as a multiple of [`SIZE_STEP`] and what remains below it. sqlx prepares each SQL text
    /// once per connection and keeps it, so a batch of any size reuses statements already
    /// prepared — at most `rows_per_statement / SIZE_STEP + SIZE_STEP` texts per table —
    /// instead of parsing one of its own (measured: parsing a few-hundred-row INSERT per audit
    /// batch was an eighth of SQLite's time on the token path). The extra statement costs a
    /// round trip per batch, not per row.
    fn statement_sizes(&self, total: usize) -> impl Iterator<Item = usize> {
        let per_statement = self.rows_per_statement();
        let full = total / per_statement;
        let rest = total % per_statement;
        let stepped = rest - rest % SIZE_STEP;
        std::iter::repeat_n(per_statement, full)
            .chain([stepped, rest % SIZE_STEP])
            .filter(|&rows| rows > 0)
    }

    /// `items` split into the statements [`statement_sizes`](Self::statement_sizes) gives.
    pub fn chunks<'a, T>(&self, items: &'a [T]) -> impl Iterator<Item = &'a [T]> {
        let mut rest = items;
        self.statement_sizes(items.len()).map(move |rows| {
            let (chunk, after) = rest.split_at(rows);
            rest = after;
            chunk
        })
    }

    fn arguments<'a, T>(
        &self,
        chunk: &'a [T],
        bind: &impl Fn(&mut SqliteArguments<'a>, &'a T) -> Result<(), StoreError>,
    ) -> Result<SqliteArguments<'a>, StoreError> {
        let mut args = self.arguments_for(chunk.len());
        for item in chunk {
            bind(&mut args, item)?;
        }
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAIR: BulkInsert = BulkInsert {
        table: "t",
        columns: "a, b",
        column_count: 2,
        suffix: "",
    };

    #[test]
    fn sql_has_one_placeholder_group_per_row() {
        assert_eq!(
            &*PAIR.sql(3),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?)"
        );
        let returning = BulkInsert {
            suffix: " ON CONFLICT DO NOTHING RETURNING a",
            ..PAIR
        };
        assert_eq!(
            &*returning.sql(2),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?) ON CONFLICT DO NOTHING RETURNING a"
        );
    }

    #[test]
    fn statements_cover_every_row_with_few_distinct_sizes() {
        let per = PAIR.rows_per_statement();
        let mut sizes = std::collections::BTreeSet::new();
        for total in 0..=3 * per + 40 {
            let split: Vec<usize> = PAIR.statement_sizes(total).collect();
            assert_eq!(split.iter().sum::<usize>(), total, "{total}: {split:?}");
            assert!(split.iter().all(|&rows| rows > 0 && rows <= per));
            assert!(split.len() <= total / per + 2);
            sizes.extend(split);
        }
        assert!(
            sizes.len() <= per / SIZE_STEP + SIZE_STEP,
            "{}",
            sizes.len()
        );
        assert_eq!(PAIR.statement_sizes(0).count(), 0);
        assert_eq!(PAIR.statement_sizes(37).collect::<Vec<_>>(), vec![32, 5]);
        assert_eq!(PAIR.statement_sizes(48).collect::<Vec<_>>(), vec![48]);
        assert_eq!(
            PAIR.statement_sizes(per + 3).collect::<Vec<_>>(),
            vec![per, 3]
        );
    }

    #[test]
    fn chunks_stay_under_the_parameter_limit() {
        assert!(PAIR.rows_per_statement() * 2 <= MAX_PARAMETERS);
        let wide = BulkInsert {
            table: "t",
            columns: "",
            column_count: 13,
            suffix: "",
        };
        assert!(wide.rows_per_statement() * 13 <= MAX_PARAMETERS);
    }
}
