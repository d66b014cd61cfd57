//! Multi-row INSERTs for bulk writes (client imports, audit batches, device lists). Each
//! statement is a round trip to SQLite's worker thread, so sending hundreds of rows per
//! statement instead of one is what makes a million-client load take seconds rather than
//! minutes.

use sqlx::sqlite::SqliteArguments;
use sqlx::{Row, SqliteConnection};

use crate::StoreError;

/// SQLite (3.32+) accepts at most 32 766 bound parameters per statement; staying well below
/// keeps statements small enough to prepare quickly.
const MAX_PARAMETERS: usize = 4096;

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

    /// The INSERT for `rows` rows, written into one buffer: an audit batch builds one per
    /// commit, so a row must not cost an allocation of its own.
    fn sql(&self, rows: usize) -> String {
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

    /// Inserts `items` on `conn`, `bind` adding each item's columns in `columns` order. Every
    /// full chunk uses the same SQL text, so sqlx prepares it once per connection and reuses it.
    pub async fn run<'a, T>(
        &self,
        conn: &mut SqliteConnection,
        items: &'a [T],
        bind: impl Fn(&mut SqliteArguments<'a>, &'a T) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let per_statement = self.rows_per_statement();
        let mut full_chunk_sql = None;
        for chunk in items.chunks(per_statement) {
            let args = Self::arguments(chunk, &bind)?;
            let mut partial_sql = String::new();
            let sql = self.chunk_sql(chunk.len(), &mut full_chunk_sql, &mut partial_sql);
            sqlx::query_with(sql, args).execute(&mut *conn).await?;
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
        let per_statement = self.rows_per_statement();
        let mut full_chunk_sql = None;
        let mut returned = Vec::new();
        for chunk in items.chunks(per_statement) {
            let args = Self::arguments(chunk, &bind)?;
            let mut partial_sql = String::new();
            let sql = self.chunk_sql(chunk.len(), &mut full_chunk_sql, &mut partial_sql);
            let rows = sqlx::query_with(sql, args).fetch_all(&mut *conn).await?;
            for row in rows {
                returned.push(row.try_get::<String, _>(0)?);
            }
        }
        Ok(returned)
    }

    /// The SQL for a chunk of `rows`. Full chunks share one text, built on first use into
    /// `full`, so sqlx prepares it once per connection; the last, shorter chunk gets its own,
    /// written into `partial`.
    fn chunk_sql<'s>(
        &self,
        rows: usize,
        full: &'s mut Option<String>,
        partial: &'s mut String,
    ) -> &'s str {
        if rows == self.rows_per_statement() {
            full.get_or_insert_with(|| self.sql(rows))
        } else {
            *partial = self.sql(rows);
            partial
        }
    }

    fn arguments<'a, T>(
        chunk: &'a [T],
        bind: &impl Fn(&mut SqliteArguments<'a>, &'a T) -> Result<(), StoreError>,
    ) -> Result<SqliteArguments<'a>, StoreError> {
        let mut args = SqliteArguments::default();
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
            PAIR.sql(3),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?)"
        );
        let returning = BulkInsert {
            suffix: " ON CONFLICT DO NOTHING RETURNING a",
            ..PAIR
        };
        assert_eq!(
            returning.sql(2),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?) ON CONFLICT DO NOTHING RETURNING a"
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
