//! Connection pools, the unit of work and migration control.
//!
//! SQLite runs in WAL mode with one *writer* connection: every write transaction queues for it
//! instead of failing with "database is locked", while reads use a separate pool of read-only
//! connections that WAL lets run beside the writer. PostgreSQL uses one pool for both.
//! Pools connect lazily, so the process can start (and report itself not ready) while the
//! database is down.

use depot_domain::ErrorCode;
use std::str::FromStr;
use std::time::Duration;

use depot_domain::{AppError, AppResult};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, SqliteTransactionMode,
    Statement, TransactionOptions, TransactionTrait,
};
use sea_orm::{SqlxPostgresConnector, SqlxSqliteConnector};
use sea_orm_migration::{MigrationStatus, MigratorTrait};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::error::db_error;
use crate::migration::Migrator;
use tracing::Instrument;

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// `sqlite://path/to/file.db` or `postgres://…`.
    pub url: String,
    /// A PostgreSQL read replica for long reads (reports); the primary when `None`.
    pub replica_url: Option<String>,
    /// Upper bound of the (read) pool.
    pub max_connections: u32,
    /// How long a caller waits for a connection before the request fails as unavailable.
    pub acquire_timeout: Duration,
    /// SQLite: how long a statement waits on a lock held by another process.
    pub busy_timeout: Duration,
}

impl DbOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            replica_url: None,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
            busy_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Clone)]
enum Pools {
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
    },
    /// The primary, and the read replica when one is configured.
    Postgres(PgPool, Option<PgPool>),
}

/// Connection pool statistics, exported as metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub name: &'static str,
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

/// Where the schema stands relative to the migrations this binary carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationState {
    pub applied: Vec<String>,
    pub pending: Vec<String>,
}

impl MigrationState {
    pub fn is_current(&self) -> bool {
        self.pending.is_empty()
    }
}

/// The database: pools plus the unit-of-work helper. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    backend: Backend,
    writer: DatabaseConnection,
    reader: DatabaseConnection,
    /// Where long reads go: a replica's pool, or `reader`.
    replica: DatabaseConnection,
    pools: Pools,
    max_connections: u32,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// An open write transaction (see [`Db::begin`]). Repositories take it as a
/// `ConnectionTrait` through `Deref`.
pub struct Tx {
    tx: DatabaseTransaction,
    /// The transaction's span in the trace: from waiting for BEGIN to the commit or rollback.
    span: tracing::Span,
}

impl Tx {
    /// Makes the transaction's writes durable.
    pub async fn commit(self) -> AppResult<()> {
        let Self { tx, span } = self;
        let committed = tx.commit().instrument(span.clone()).await;
        span.record(
            "db.outcome",
            if committed.is_ok() { "commit" } else { "error" },
        );
        if committed.is_err() {
            span.record("otel.status_code", "ERROR");
        }
        committed.map_err(db_error)
    }
}

impl std::ops::Deref for Tx {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.tx
    }
}

impl Db {
    /// Builds the pools without connecting; the first query connects.
    pub fn connect_lazy(options: &DbOptions) -> AppResult<Self> {
        let url = options.url.as_str();
        if url.starts_with("sqlite:") {
            Self::sqlite(options)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::postgres(options)
        } else {
            Err(AppError::new(
                ErrorCode::ConfigDatabaseUrl,
                "DATABASE_URL must start with sqlite: or postgres://",
            ))
        }
    }

    fn sqlite(options: &DbOptions) -> AppResult<Self> {
        let base = SqliteConnectOptions::from_str(&options.url)
            .map_err(|e| invalid_url(e.to_string()))?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(options.busy_timeout)
            .foreign_keys(true);
        // One writer: concurrent write transactions queue here rather than racing for the
        // file lock. The queue is bounded by the acquire timeout.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout.max(Duration::from_secs(30)))
            .connect_lazy_with(base.clone().create_if_missing(true));
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_lazy_with(base.read_only(true));
        Ok(Self {
            backend: Backend::Sqlite,
            writer: SqlxSqliteConnector::from_sqlx_sqlite_pool(writer.clone()),
            reader: SqlxSqliteConnector::from_sqlx_sqlite_pool(reader.clone()),
            replica: SqlxSqliteConnector::from_sqlx_sqlite_pool(reader.clone()),
            pools: Pools::Sqlite { writer, reader },
            max_connections: options.max_connections.max(1),
        })
    }

    fn postgres(options: &DbOptions) -> AppResult<Self> {
        let connect =
            PgConnectOptions::from_str(&options.url).map_err(|e| invalid_url(e.to_string()))?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_lazy_with(connect);
        let conn = SqlxPostgresConnector::from_sqlx_postgres_pool(pool.clone());
        let replica_pool = match &options.replica_url {
            Some(url) => {
                let connect =
                    PgConnectOptions::from_str(url).map_err(|e| invalid_url(e.to_string()))?;
                Some(
                    PgPoolOptions::new()
                        .max_connections(options.max_connections.max(1))
                        .acquire_timeout(options.acquire_timeout)
                        .connect_lazy_with(connect),
                )
            }
            None => None,
        };
        let replica = replica_pool.clone().map_or_else(
            || conn.clone(),
            SqlxPostgresConnector::from_sqlx_postgres_pool,
        );
        Ok(Self {
            backend: Backend::Postgres,
            writer: conn.clone(),
            reader: conn,
            replica,
            pools: Pools::Postgres(pool, replica_pool),
            max_connections: options.max_connections.max(1),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A connection for reads outside a unit of work.
    pub fn reader(&self) -> &DatabaseConnection {
        &self.reader
    }

    /// Opens a write transaction: the database side of a unit of work. It commits with
    /// [`Tx::commit`] and rolls back when dropped uncommitted (an early `?`, a panic, a
    /// cancelled request). This is the only way to write.
    ///
    /// On SQLite the transaction holds the single writer connection until it ends, so other
    /// writers queue for it; keep units of work short and free of network calls.
    pub async fn begin(&self) -> AppResult<Tx> {
        let options = match self.backend {
            // The write lock is taken at BEGIN, waiting (`busy_timeout`) while another process
            // holds it. A deferred transaction that read first would fail instead when it
            // came to write after another process had written (SQLITE_BUSY_SNAPSHOT).
            Backend::Sqlite => TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            },
            Backend::Postgres => TransactionOptions::default(),
        };
        let span = tracing::info_span!(
            "db.transaction",
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            db.system.name = self.backend.as_str(),
            db.outcome = "rollback",
        );
        let tx = self
            .writer
            .begin_with_options(options)
            .instrument(span.clone())
            .await
            .map_err(db_error)?;
        Ok(Tx { tx, span })
    }

    /// Like [`Db::snapshot`] on the read replica when one is configured: for long reads
    /// (reports) that should not load the primary. A replica lags its primary a little.
    pub async fn replica_snapshot(&self) -> AppResult<DatabaseTransaction> {
        match self.backend {
            Backend::Postgres => self
                .replica
                .begin_with_config(
                    Some(sea_orm::IsolationLevel::RepeatableRead),
                    Some(sea_orm::AccessMode::ReadOnly),
                )
                .await
                .map_err(db_error),
            Backend::Sqlite => self.replica.begin().await.map_err(db_error),
        }
    }

    /// Opens a read-only transaction that sees one consistent state of the whole database
    /// (repeatable read on PostgreSQL; a WAL read snapshot on SQLite), for checks that read
    /// several tables and must not see a change half-way. Dropping it ends it.
    pub async fn snapshot(&self) -> AppResult<DatabaseTransaction> {
        match self.backend {
            Backend::Postgres => self
                .reader
                .begin_with_config(
                    Some(sea_orm::IsolationLevel::RepeatableRead),
                    Some(sea_orm::AccessMode::ReadOnly),
                )
                .await
                .map_err(db_error),
            Backend::Sqlite => self.reader.begin().await.map_err(db_error),
        }
    }

    /// A read transaction whose queries PostgreSQL plans for their actual values every time
    /// (`plan_cache_mode = force_custom_plan`, this transaction only). For queries whose best
    /// plan depends on a value, such as a text search ordered by a key: the generic plan of a
    /// prepared statement cannot tell a rare term (use the trigram index) from a common one
    /// (walk the sort index), and on a rare term walks all of it. On SQLite a plain read.
    pub async fn custom_plan_reader(&self) -> AppResult<DatabaseTransaction> {
        let tx = self.reader.begin().await.map_err(db_error)?;
        if self.backend == Backend::Postgres {
            tx.execute_unprepared("SET LOCAL plan_cache_mode = force_custom_plan")
                .await
                .map_err(db_error)?;
        }
        Ok(tx)
    }

    /// Checks that the database answers a trivial query within `timeout`.
    pub async fn ping(&self, timeout: Duration) -> AppResult<()> {
        let probe = async {
            // The writer is the connection that matters for SQLite (it creates the file);
            // on PostgreSQL both are the same pool.
            self.writer
                .execute_unprepared("SELECT 1")
                .await
                .map(|_| ())
                .map_err(db_error)
        };
        tokio::time::timeout(timeout, probe)
            .await
            .unwrap_or_else(|_| {
                Err(AppError::new(
                    ErrorCode::DbTimeout,
                    "the database did not answer in time",
                ))
            })
    }

    /// Refreshes the planner's statistics of `tables` after a bulk load (PostgreSQL `ANALYZE`;
    /// SQLite keeps none unless asked and is left alone). Autovacuum analyses a table only once
    /// its threshold and nap time allow; until then plans over the new rows are guesses made
    /// for a table of the old size.
    pub async fn analyze(&self, tables: &[&'static str]) -> AppResult<()> {
        if self.backend != Backend::Postgres || tables.is_empty() {
            return Ok(());
        }
        // The names are the caller's constants, never input.
        self.writer
            .execute_unprepared(&format!("ANALYZE {}", tables.join(", ")))
            .await
            .map(|_| ())
            .map_err(db_error)
    }

    /// Writes a consistent copy of a SQLite database to `path` (a new file) while the database
    /// is in use: `VACUUM INTO` on a read connection, one snapshot of every table; writers go on
    /// meanwhile. PostgreSQL is copied by its own tools (`pg_dump`).
    pub async fn snapshot_into(&self, path: &std::path::Path) -> AppResult<()> {
        if self.backend != Backend::Sqlite {
            return Err(AppError::internal("snapshot_into is for SQLite"));
        }
        let target = path
            .to_str()
            .ok_or_else(|| AppError::internal("the backup path is not UTF-8"))?;
        self.reader
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "VACUUM INTO ?",
                [target.into()],
            ))
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// The file a `sqlite:` URL names (`None` for another database or an in-memory one).
    pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
        let options = SqliteConnectOptions::from_str(url).ok()?;
        let file = options.get_filename();
        (!file.as_os_str().is_empty() && file != std::path::Path::new(":memory:"))
            .then(|| file.to_path_buf())
    }

    /// Whether the database holds no table at all (in PostgreSQL's current schema).
    pub async fn is_empty(&self) -> AppResult<bool> {
        let sql = match self.backend {
            Backend::Sqlite => "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table'",
            Backend::Postgres => {
                "SELECT COUNT(*) AS n FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') \
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND n.nspname NOT LIKE 'pg_toast%'"
            }
        };
        let row = self
            .writer
            .query_one_raw(Statement::from_string(
                self.writer.get_database_backend(),
                sql,
            ))
            .await
            .map_err(db_error)?;
        let tables: i64 = match row {
            Some(row) => row.try_get("", "n").map_err(db_error)?,
            None => 0,
        };
        Ok(tables == 0)
    }

    /// The migrations this build knows, oldest first.
    pub fn known_migrations() -> Vec<String> {
        Migrator::migrations()
            .iter()
            .map(|m| m.name().to_owned())
            .collect()
    }

    /// Reads which migrations are applied and pending, without creating anything.
    pub async fn migration_state(&self) -> AppResult<MigrationState> {
        let all = Migrator::get_migration_with_status_read_only(&self.writer)
            .await
            .map_err(db_error)?;
        let mut state = MigrationState {
            applied: Vec::new(),
            pending: Vec::new(),
        };
        for m in all {
            let name = m.name().to_owned();
            match m.status() {
                MigrationStatus::Applied => state.applied.push(name),
                MigrationStatus::Pending => state.pending.push(name),
            }
        }
        Ok(state)
    }

    /// Applies every pending migration. On PostgreSQL an advisory lock keeps two processes from
    /// migrating at once.
    pub async fn migrate_up(&self) -> AppResult<MigrationState> {
        let conn = self.migration_connection().await?;
        let result = Migrator::up(conn.get(&self.writer), None).await;
        conn.release().await?;
        result.map_err(db_error)?;
        self.migration_state().await
    }

    /// Rolls back the last `steps` migrations.
    pub async fn migrate_down(&self, steps: u32) -> AppResult<MigrationState> {
        let conn = self.migration_connection().await?;
        let result = Migrator::down(conn.get(&self.writer), Some(steps)).await;
        conn.release().await?;
        result.map_err(db_error)?;
        self.migration_state().await
    }

    /// The connection to migrate on: the writer on SQLite; on PostgreSQL a dedicated
    /// connection holding the migration advisory lock (session-level locks belong to one
    /// connection).
    async fn migration_connection(&self) -> AppResult<MigrationConnection> {
        let Pools::Postgres(pool, _) = &self.pools else {
            return Ok(MigrationConnection::Writer);
        };
        let single = SqlxPostgresConnector::from_sqlx_postgres_pool(
            PgPoolOptions::new()
                .max_connections(1)
                .connect_lazy_with(pool.connect_options().as_ref().clone()),
        );
        let lock = Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"),
        );
        single.execute_raw(lock).await.map_err(db_error)?;
        Ok(MigrationConnection::Locked(single))
    }

    /// Current pool statistics, one entry per pool.
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        match &self.pools {
            Pools::Sqlite { writer, reader } => vec![
                PoolStats {
                    name: "sqlite_writer",
                    size: writer.size(),
                    idle: writer.num_idle() as u32,
                    max: 1,
                },
                PoolStats {
                    name: "sqlite_reader",
                    size: reader.size(),
                    idle: reader.num_idle() as u32,
                    max: self.max_connections,
                },
            ],
            Pools::Postgres(pool, _) => vec![PoolStats {
                name: "postgres",
                size: pool.size(),
                idle: pool.num_idle() as u32,
                max: self.max_connections,
            }],
        }
    }

    /// Closes every pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match &self.pools {
            Pools::Sqlite { writer, reader } => {
                reader.close().await;
                writer.close().await;
            }
            Pools::Postgres(pool, replica) => {
                if let Some(replica) = replica {
                    replica.close().await;
                }
                pool.close().await;
            }
        }
    }
}

/// Where migrations run; see [`Db::migration_connection`].
enum MigrationConnection {
    Writer,
    Locked(DatabaseConnection),
}

impl MigrationConnection {
    fn get<'a>(&'a self, writer: &'a DatabaseConnection) -> &'a DatabaseConnection {
        match self {
            Self::Writer => writer,
            Self::Locked(conn) => conn,
        }
    }

    /// Releases the advisory lock and closes the dedicated connection.
    async fn release(self) -> AppResult<()> {
        let Self::Locked(conn) = self else {
            return Ok(());
        };
        let unlock = Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"),
        );
        let unlocked = conn.execute_raw(unlock).await.map_err(db_error);
        let _ = conn.close().await;
        unlocked.map(|_| ())
    }
}

/// Arbitrary but fixed key of the PostgreSQL advisory lock held while migrating.
const MIGRATION_LOCK_KEY: i64 = 0x6465_706f_745f_6d67; // "depot_mg"

fn invalid_url(reason: String) -> AppError {
    AppError::new(
        ErrorCode::ConfigDatabaseUrl,
        format!("DATABASE_URL is not valid: {reason}"),
    )
}
