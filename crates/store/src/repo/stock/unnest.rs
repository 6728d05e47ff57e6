//! Many rows in one PostgreSQL statement: `INSERT … SELECT … FROM unnest($1, $2, …)`, each
//! column of a chunk bound once — as one binary array, or as a single value when every row of
//! the chunk holds the same one (an import's timestamp, note, actor or reason). Thousands of
//! rows cost a handful of bound values, and neither side formats or parses text for them.
//! PostgreSQL only; SQLite takes the multi-row `INSERT` of `repo::upsert_all`.

use chrono::{DateTime, NaiveDate, Utc};
use depot_domain::AppResult;
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use uuid::Uuid;

use crate::error::db_error;

/// Rows per statement.
const ROWS: usize = 5_000;

/// One column: its name, its PostgreSQL type, and a row's value (a typed NULL for none).
pub(crate) type Column<T> = (&'static str, &'static str, fn(&T) -> Value);

pub(crate) fn uuid(id: Option<Uuid>) -> Value {
    Value::Uuid(id)
}

pub(crate) fn int(n: Option<i64>) -> Value {
    Value::BigInt(n)
}

pub(crate) fn text(s: Option<&str>) -> Value {
    Value::String(s.map(str::to_owned))
}

pub(crate) fn instant(at: Option<DateTime<Utc>>) -> Value {
    Value::ChronoDateTimeUtc(at)
}

pub(crate) fn day(d: Option<NaiveDate>) -> Value {
    Value::ChronoDate(d)
}

/// How one column of a chunk is bound.
#[derive(Debug, PartialEq)]
enum Bound {
    /// The same value for every row.
    Same(Value),
    /// One element per row, none NULL.
    Each(Value),
    /// One element per row and a mask of the rows that are NULL (a binary array bound through
    /// the driver holds no NULL elements: those rows carry a placeholder the mask overrides).
    EachOrNull(Value, Value),
}

/// Binds one column's cells, `first` and the `rest` (a chunk is never empty); `fold` lets a
/// column whose cells are all equal travel as one value.
fn bind(first: Value, rest: impl Iterator<Item = Value>, fold: bool) -> Bound {
    let mut cells = vec![first];
    cells.extend(rest);
    let first = &cells[0];
    if fold && cells.iter().all(|c| c == first) {
        return Bound::Same(first.clone());
    }
    let array_type = first.array_type();
    if cells.iter().all(Value::is_some) {
        return Bound::Each(Value::Array(array_type, Some(Box::new(cells))));
    }
    let placeholder = cells
        .iter()
        .find(|c| c.is_some())
        .map_or_else(|| first.dummy_value(), Clone::clone);
    let mask: Vec<Value> = cells
        .iter()
        .map(|c| Value::Bool(Some(!c.is_some())))
        .collect();
    let elements: Vec<Value> = cells
        .into_iter()
        .map(|c| if c.is_some() { c } else { placeholder.clone() })
        .collect();
    Bound::EachOrNull(
        Value::Array(array_type, Some(Box::new(elements))),
        Value::Array(Value::Bool(None).array_type(), Some(Box::new(mask))),
    )
}

/// `SELECT <one expression per column, named after it> FROM unnest(<arrays>) AS u(…)` for one
/// chunk of rows, `first` and the `rest`, and the values it binds.
fn source<T>(columns: &[&Column<T>], first: &T, rest: &[T]) -> (String, Vec<Value>) {
    let mut values = Vec::new();
    let mut selected = Vec::with_capacity(columns.len());
    let mut arrays = Vec::new();
    let mut names = Vec::new();
    for (i, (name, ty, get)) in columns.iter().enumerate() {
        // The first column always travels as an array: `unnest` needs one to make the rows.
        match bind(get(first), rest.iter().map(get), i > 0) {
            Bound::Same(value) => {
                values.push(value);
                selected.push(format!("${}::{ty} AS {name}", values.len()));
            }
            Bound::Each(array) => {
                values.push(array);
                arrays.push(format!("${}::{ty}[]", values.len()));
                names.push((*name).to_owned());
                selected.push(format!("u.{name}"));
            }
            Bound::EachOrNull(array, mask) => {
                values.push(array);
                arrays.push(format!("${}::{ty}[]", values.len()));
                values.push(mask);
                arrays.push(format!("${}::boolean[]", values.len()));
                names.push((*name).to_owned());
                names.push(format!("{name}_null"));
                selected.push(format!(
                    "CASE WHEN u.{name}_null THEN NULL ELSE u.{name} END AS {name}"
                ));
            }
        }
    }
    let sql = format!(
        "SELECT {} FROM unnest({}) AS u({})",
        selected.join(", "),
        arrays.join(", "),
        names.join(", ")
    );
    (sql, values)
}

/// `INSERT INTO table (columns) SELECT … FROM unnest(…) <tail>` for `rows`, `ROWS` at a time.
pub(crate) async fn insert<T>(
    conn: &impl ConnectionTrait,
    table: &str,
    columns: &[Column<T>],
    rows: &[T],
    tail: &str,
) -> AppResult<()> {
    let all: Vec<&Column<T>> = columns.iter().collect();
    let names: Vec<&str> = columns.iter().map(|c| c.0).collect();
    run(conn, &all, rows, |source| {
        format!("INSERT INTO {table} ({}) {source} {tail}", names.join(", "))
    })
    .await
}

/// `UPDATE table SET … FROM (SELECT … FROM unnest(…)) AS v WHERE keys match`, for `rows`.
pub(crate) async fn update<T>(
    conn: &impl ConnectionTrait,
    table: &str,
    keys: &[Column<T>],
    columns: &[Column<T>],
    rows: &[T],
) -> AppResult<()> {
    let all: Vec<&Column<T>> = keys.iter().chain(columns).collect();
    let sets: Vec<String> = columns
        .iter()
        .map(|c| format!("{0} = v.{0}", c.0))
        .collect();
    let matches: Vec<String> = keys
        .iter()
        .map(|c| format!("{table}.{0} = v.{0}", c.0))
        .collect();
    run(conn, &all, rows, |source| {
        format!(
            "UPDATE {table} SET {} FROM ({source}) AS v WHERE {}",
            sets.join(", "),
            matches.join(" AND ")
        )
    })
    .await
}

/// Runs the statement `sql` makes around each chunk's source, `ROWS` rows at a time.
async fn run<T>(
    conn: &impl ConnectionTrait,
    columns: &[&Column<T>],
    rows: &[T],
    sql: impl Fn(&str) -> String,
) -> AppResult<()> {
    for chunk in rows.chunks(ROWS) {
        let Some((first, rest)) = chunk.split_first() else {
            continue;
        };
        let (source, values) = source(columns, first, rest);
        conn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql(&source),
            values,
        ))
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Row {
        id: i64,
        note: Option<&'static str>,
        at: Option<i64>,
    }

    const COLUMNS: &[Column<Row>] = &[
        ("id", "bigint", |r| int(Some(r.id))),
        ("note", "text", |r| text(r.note)),
        ("at", "bigint", |r| int(r.at)),
    ];

    fn rows(notes: &[Option<&'static str>], at: &[Option<i64>]) -> Vec<Row> {
        notes
            .iter()
            .zip(at)
            .enumerate()
            .map(|(i, (note, at))| Row {
                id: i as i64,
                note: *note,
                at: *at,
            })
            .collect()
    }

    fn source_of(rows: &[Row]) -> (String, Vec<Value>) {
        let columns: Vec<&Column<Row>> = COLUMNS.iter().collect();
        source(&columns, &rows[0], &rows[1..])
    }

    #[test]
    fn a_column_the_same_on_every_row_is_one_value_and_the_first_is_always_an_array() {
        let (sql, values) = source_of(&rows(&[Some("n"), Some("n")], &[None, None]));
        assert_eq!(
            sql,
            "SELECT u.id, $2::text AS note, $3::bigint AS at FROM unnest($1::bigint[]) AS u(id)"
        );
        assert_eq!(
            values,
            vec![
                Value::from(vec![0_i64, 1]),
                Value::String(Some("n".into())),
                Value::BigInt(None),
            ]
        );
        let (sql, _) = source_of(&rows(&[None], &[Some(5)]));
        assert!(sql.ends_with("FROM unnest($1::bigint[]) AS u(id)"), "{sql}");
    }

    #[test]
    fn differing_cells_are_an_array_and_nulls_among_them_a_mask() {
        let (sql, values) = source_of(&rows(
            &[Some("a"), Some("b"), None],
            &[Some(1), None, Some(3)],
        ));
        assert_eq!(
            sql,
            "SELECT u.id, CASE WHEN u.note_null THEN NULL ELSE u.note END AS note, \
             CASE WHEN u.at_null THEN NULL ELSE u.at END AS at \
             FROM unnest($1::bigint[], $2::text[], $3::boolean[], $4::bigint[], $5::boolean[]) \
             AS u(id, note, note_null, at, at_null)"
        );
        assert_eq!(
            values[1..],
            [
                Value::from(vec!["a".to_owned(), "b".into(), "a".into()]),
                Value::from(vec![false, false, true]),
                Value::from(vec![1_i64, 1, 3]),
                Value::from(vec![false, true, false]),
            ]
        );
        let (sql, _) = source_of(&rows(&[Some("a"), Some("b")], &[Some(1), Some(2)]));
        assert!(sql.contains("u.note, u.at FROM"), "{sql}");
    }
}
