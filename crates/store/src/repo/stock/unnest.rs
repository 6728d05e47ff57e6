//! Many rows in one PostgreSQL statement: each column travels as ONE text array literal and
//! `unnest($1::uuid[], $2::bigint[], …)` turns them back into rows. Thousands of rows cost a
//! handful of bound values instead of one per cell, which is what makes bulk imports fast.
//! PostgreSQL only; SQLite takes the multi-row `INSERT` of `repo::upsert_all`.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use depot_domain::AppResult;
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use uuid::Uuid;

use crate::error::db_error;

/// Rows per statement.
const ROWS: usize = 5_000;

/// One column: its name, its PostgreSQL type, and a row's value as text (`None` = NULL).
pub(crate) type Column<T> = (&'static str, &'static str, fn(&T) -> Option<String>);

pub(crate) fn uuid(id: Uuid) -> Option<String> {
    Some(id.to_string())
}

pub(crate) fn int(n: i64) -> Option<String> {
    Some(n.to_string())
}

pub(crate) fn instant(at: DateTime<Utc>) -> Option<String> {
    Some(at.to_rfc3339_opts(SecondsFormat::Micros, true))
}

pub(crate) fn day(d: NaiveDate) -> Option<String> {
    Some(d.to_string())
}

/// A PostgreSQL array literal: every element quoted (`"` and `\` escaped), `NULL` for none.
fn literal(values: impl Iterator<Item = Option<String>>) -> String {
    let mut out = String::from("{");
    for (i, value) in values.enumerate() {
        if i > 0 {
            out.push(',');
        }
        match value {
            None => out.push_str("NULL"),
            Some(text) => {
                out.push('"');
                for c in text.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
        }
    }
    out.push('}');
    out
}

/// `INSERT INTO table (columns) SELECT * FROM unnest(…) <tail>` for `rows`, `ROWS` at a time.
pub(crate) async fn insert<T>(
    conn: &impl ConnectionTrait,
    table: &str,
    columns: &[Column<T>],
    rows: &[T],
    tail: &str,
) -> AppResult<()> {
    let names: Vec<&str> = columns.iter().map(|c| c.0).collect();
    let arrays: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}[]", i + 1, c.1))
        .collect();
    let sql = format!(
        "INSERT INTO {table} ({}) SELECT * FROM unnest({}) {tail}",
        names.join(", "),
        arrays.join(", ")
    );
    let columns: Vec<&Column<T>> = columns.iter().collect();
    run(conn, &sql, &columns, rows).await
}

/// Runs `sql` once per `ROWS` rows, `$n` bound to the array of the n-th column.
async fn run<T>(
    conn: &impl ConnectionTrait,
    sql: &str,
    columns: &[&Column<T>],
    rows: &[T],
) -> AppResult<()> {
    for chunk in rows.chunks(ROWS) {
        let values: Vec<Value> = columns
            .iter()
            .map(|c| Value::from(literal(chunk.iter().map(c.2))))
            .collect();
        conn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            values,
        ))
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

/// `UPDATE table SET … FROM unnest(…) AS v(columns) WHERE keys match`, for `rows`.
pub(crate) async fn update<T>(
    conn: &impl ConnectionTrait,
    table: &str,
    keys: &[Column<T>],
    columns: &[Column<T>],
    rows: &[T],
) -> AppResult<()> {
    let all: Vec<&Column<T>> = keys.iter().chain(columns).collect();
    let arrays: Vec<String> = all
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}[]", i + 1, c.1))
        .collect();
    let names: Vec<&str> = all.iter().map(|c| c.0).collect();
    let sets: Vec<String> = columns
        .iter()
        .map(|c| format!("{0} = v.{0}", c.0))
        .collect();
    let matches: Vec<String> = keys
        .iter()
        .map(|c| format!("{table}.{0} = v.{0}", c.0))
        .collect();
    let sql = format!(
        "UPDATE {table} SET {} FROM unnest({}) AS v({}) WHERE {}",
        sets.join(", "),
        arrays.join(", "),
        names.join(", "),
        matches.join(" AND ")
    );
    run(conn, &sql, &all, rows).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_quote_escape_and_null() {
        let values = vec![
            Some("plain".to_owned()),
            None,
            Some(r#"say "hi" \ bye"#.to_owned()),
            Some(String::new()),
            Some("a,b{c}".to_owned()),
        ];
        assert_eq!(
            literal(values.into_iter()),
            r#"{"plain",NULL,"say \"hi\" \\ bye","","a,b{c}"}"#
        );
        assert_eq!(literal(std::iter::empty()), "{}");
    }
}
