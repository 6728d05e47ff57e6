//! Column, key, index and trigger builders the migrations share.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

pub fn uuid_pk(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).uuid().not_null().primary_key().take()
}

pub fn uuid(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).uuid().not_null().take()
}

pub fn uuid_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).uuid().null().take()
}

pub fn text(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).text().not_null().take()
}

pub fn text_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).text().null().take()
}

pub fn ts(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .take()
}

pub fn ts_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().null().take()
}

pub fn flag(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .boolean()
        .not_null()
        .default(false)
        .take()
}

pub fn big(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).big_integer().not_null().take()
}

pub fn big_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).big_integer().null().take()
}

/// A text column limited to `allowed` by a `CHECK`; nullable when `nullable`.
pub fn one_of(
    col: impl IntoIden + Clone + 'static,
    allowed: &[&'static str],
    nullable: bool,
) -> ColumnDef {
    let mut def = ColumnDef::new(col.clone());
    def.text();
    if nullable {
        def.null();
    } else {
        def.not_null();
    }
    def.check(Expr::col(col).is_in(allowed.iter().copied()))
        .take()
}

/// A foreign key that deletes the rows referring to a deleted row.
pub fn references(
    name: &str,
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
) -> ForeignKeyCreateStatement {
    restricts(name, from, to)
        .on_delete(ForeignKeyAction::Cascade)
        .take()
}

/// A foreign key that refuses to delete a row still referred to.
pub fn restricts(
    name: &str,
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to.0, to.1)
        .take()
}

pub fn index(
    name: &str,
    table: impl IntoIden,
    cols: &[impl IntoIden + Copy],
) -> IndexCreateStatement {
    let mut index = Index::create().name(name).table(table).take();
    for col in cols {
        index.col(*col);
    }
    index
}

/// Makes a table append-only in the database itself: UPDATE and DELETE raise an error (on
/// PostgreSQL in every session, `session_replication_role = replica` included).
pub async fn make_append_only(manager: &SchemaManager<'_>, table: &str) -> Result<(), DbErr> {
    let db = manager.get_connection();
    match manager.get_database_backend() {
        DbBackend::Postgres => {
            db.execute_unprepared(&format!(
                "CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN RAISE EXCEPTION '{table} is append-only'; END $$;\n\
                 CREATE TRIGGER {table}_no_update BEFORE UPDATE OR DELETE ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION {table}_append_only();\n\
                 ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_no_update;"
            ))
            .await?;
        }
        _ => {
            for op in ["UPDATE", "DELETE"] {
                let lower = op.to_lowercase();
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER {table}_no_{lower} BEFORE {op} ON {table} \
                     BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END;"
                ))
                .await?;
            }
        }
    }
    Ok(())
}

pub async fn drop_append_only(manager: &SchemaManager<'_>, table: &str) -> Result<(), DbErr> {
    let db = manager.get_connection();
    match manager.get_database_backend() {
        DbBackend::Postgres => {
            db.execute_unprepared(&format!(
                "DROP TRIGGER IF EXISTS {table}_no_update ON {table};\n\
                 DROP FUNCTION IF EXISTS {table}_append_only();"
            ))
            .await?;
        }
        _ => {
            for op in ["update", "delete"] {
                db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {table}_no_{op};"))
                    .await?;
            }
        }
    }
    Ok(())
}
