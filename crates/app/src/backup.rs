//! Backups: a consistent snapshot of the database with a manifest, and its restore into an
//! empty database — `depot backup --to DIR` and `depot restore --from DIR`.
//!
//! SQLite is copied while the server runs (`VACUUM INTO` on a read connection: one snapshot of
//! every table, writers go on) into `DIR/depot.db`; PostgreSQL by `pg_dump --format=custom` into
//! `DIR/depot.dump` when it is installed. `DIR/manifest.json` names the backend, the migrations
//! the snapshot has, when it was taken, the file, its size and its SHA-256. A restore checks all
//! of that, refuses a snapshot from a newer schema than this build knows (it could not run on
//! it) and writes only into an empty database; `depot migrate up` (or `auto_migrate`) then
//! brings an older snapshot up to this build's schema.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use depot_domain::{AppError, AppResult, Clock, ErrorCode};
use depot_store::{Backend, Db};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

/// The manifest's file name in a backup directory.
pub const MANIFEST: &str = "manifest.json";
/// The manifest format this build writes and reads.
const FORMAT: u32 = 1;
const SQLITE_FILE: &str = "depot.db";
const POSTGRES_FILE: &str = "depot.dump";

/// What a backup directory holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// `sqlite` or `postgres`.
    pub backend: String,
    pub created_at: DateTime<Utc>,
    /// The version of Depot that took it.
    pub depot_version: String,
    /// The migrations applied in the snapshot, oldest first.
    pub migrations: Vec<String>,
    /// The snapshot's file, in the same directory.
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
}

/// Takes and restores backups of one database (on the database alone, as the CLI runs it).
pub struct BackupService {
    db: Db,
    database_url: String,
    clock: Arc<dyn Clock>,
}

fn refused(message: impl Into<std::borrow::Cow<'static, str>>) -> AppError {
    AppError::new(ErrorCode::BackupRefused, message)
}

/// A backup of a database that is not Depot's (a mistyped data_dir or database_url).
fn no_schema() -> AppError {
    refused("the database holds no Depot schema: check database_url (or data_dir)")
}

fn io(what: &str, path: &Path, err: std::io::Error) -> AppError {
    AppError::internal(format!("{what} {}: {err}", path.display()))
}

impl BackupService {
    pub fn standalone(db: Db, database_url: String, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            database_url,
            clock,
        }
    }

    /// Writes a snapshot and its manifest into `to` (created if missing; it must be empty).
    pub async fn backup(&self, to: &Path) -> AppResult<Manifest> {
        if self.db.backend() == Backend::Sqlite
            && Db::sqlite_file(&self.database_url).is_some_and(|file| !file.exists())
        {
            // Connecting would create it, empty.
            return Err(no_schema());
        }
        // The snapshot holds password hashes and sessions: only its owner reads it.
        let mut dir = tokio::fs::DirBuilder::new();
        dir.recursive(true);
        #[cfg(unix)]
        dir.mode(0o700);
        dir.create(to)
            .await
            .map_err(|e| io("cannot create", to, e))?;
        let mut entries = tokio::fs::read_dir(to)
            .await
            .map_err(|e| io("cannot read", to, e))?;
        if entries
            .next_entry()
            .await
            .map_err(|e| io("cannot read", to, e))?
            .is_some()
        {
            return Err(refused(format!(
                "{} is not empty: a backup goes into a new directory",
                to.display()
            )));
        }
        let migrations = self.db.migration_state().await?.applied;
        if migrations.is_empty() {
            // A mistyped data_dir or database_url reaches an empty (or new) database: a backup
            // of it would succeed and hold nothing.
            return Err(no_schema());
        }
        let created_at = self.clock.now();
        let (backend, file) = match self.db.backend() {
            Backend::Sqlite => {
                self.db.snapshot_into(&to.join(SQLITE_FILE)).await?;
                ("sqlite", SQLITE_FILE)
            }
            Backend::Postgres => {
                let target = to.join(POSTGRES_FILE);
                run_tool(
                    "pg_dump",
                    &self.database_url,
                    &[
                        "--format=custom".as_ref(),
                        "--no-owner".as_ref(),
                        "--file".as_ref(),
                        target.as_os_str(),
                    ],
                )
                .await?;
                ("postgres", POSTGRES_FILE)
            }
        };
        let (bytes, sha256) = checksum(&to.join(file)).await?;
        let manifest = Manifest {
            format: FORMAT,
            backend: backend.to_owned(),
            created_at,
            depot_version: env!("CARGO_PKG_VERSION").to_owned(),
            migrations,
            file: file.to_owned(),
            bytes,
            sha256,
        };
        let text = serde_json::to_vec_pretty(&manifest).map_err(AppError::internal)?;
        let written = to.join(format!("{MANIFEST}.partial"));
        tokio::fs::write(&written, text)
            .await
            .map_err(|e| io("cannot write", &written, e))?;
        sync(&written).await?;
        sync(&to.join(file)).await?;
        // Last, and in one step: a directory with a manifest holds a whole backup.
        tokio::fs::rename(&written, to.join(MANIFEST))
            .await
            .map_err(|e| io("cannot write", &written, e))?;
        sync(to).await?;
        Ok(manifest)
    }

    /// Restores the backup in `from` into this service's database, which must be empty.
    pub async fn restore(&self, from: &Path) -> AppResult<Manifest> {
        let manifest = read_manifest(from).await?;
        let backend = match self.db.backend() {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        if manifest.backend != backend {
            return Err(refused(format!(
                "the snapshot is of a {} database; this one is {backend}",
                manifest.backend
            )));
        }
        let known = Db::known_migrations();
        if let Some(newer) = manifest.migrations.iter().find(|m| !known.contains(m)) {
            return Err(refused(format!(
                "the snapshot's schema is newer than this build's (it has migration {newer}): \
                 restore it with the Depot version that took it ({})",
                manifest.depot_version
            )));
        }
        let expected = match self.db.backend() {
            Backend::Sqlite => SQLITE_FILE,
            Backend::Postgres => POSTGRES_FILE,
        };
        if manifest.file != expected {
            return Err(refused(format!(
                "the manifest names {:?}; a {backend} backup is {expected:?}",
                manifest.file
            )));
        }
        let file = from.join(&manifest.file);
        let (bytes, sha256) = checksum(&file).await?;
        if (bytes, sha256.as_str()) != (manifest.bytes, manifest.sha256.as_str()) {
            return Err(refused(format!(
                "{} does not match the manifest (size or SHA-256): the backup is damaged",
                file.display()
            )));
        }
        match self.db.backend() {
            Backend::Sqlite => self.restore_sqlite(&file).await?,
            Backend::Postgres => self.restore_postgres(&file).await?,
        }
        Ok(manifest)
    }

    async fn restore_sqlite(&self, file: &Path) -> AppResult<()> {
        let target = Db::sqlite_file(&self.database_url)
            .ok_or_else(|| refused("database_url names no SQLite file to restore into"))?;
        for leftover in [
            target.clone(),
            with_suffix(&target, "-wal"),
            with_suffix(&target, "-journal"),
        ] {
            let size = tokio::fs::metadata(&leftover).await.map(|m| m.len());
            if size.is_ok_and(|size| size > 0) {
                return Err(refused(format!(
                    "{} exists: restore into an empty data directory",
                    leftover.display()
                )));
            }
        }
        if let Some(dir) = target.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| io("cannot create", dir, e))?;
        }
        let partial = with_suffix(&target, ".restoring");
        tokio::fs::copy(file, &partial)
            .await
            .map_err(|e| io("cannot copy to", &partial, e))?;
        sync(&partial).await?;
        let _ = tokio::fs::remove_file(with_suffix(&target, "-shm")).await;
        tokio::fs::rename(&partial, &target)
            .await
            .map_err(|e| io("cannot move into place", &target, e))?;
        match target.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => sync(dir).await,
            _ => Ok(()),
        }
    }

    async fn restore_postgres(&self, file: &Path) -> AppResult<()> {
        if !self.db.is_empty().await? {
            return Err(refused(
                "the database already holds tables: restore into an empty database",
            ));
        }
        // Owners, grants and comments name roles (and extension owners) of the cluster the dump
        // came from; the schema and the rows are what is restored.
        run_tool(
            "pg_restore",
            &self.database_url,
            &[
                "--no-owner".as_ref(),
                "--no-privileges".as_ref(),
                "--no-comments".as_ref(),
                "--exit-on-error".as_ref(),
                "--single-transaction".as_ref(),
                file.as_os_str(),
            ],
        )
        .await
    }
}

/// Reads and checks the manifest in `from`.
pub async fn read_manifest(from: &Path) -> AppResult<Manifest> {
    let path = from.join(MANIFEST);
    let text = tokio::fs::read(&path).await.map_err(|e| {
        refused(format!(
            "{} cannot be read ({e}): not a finished backup",
            path.display()
        ))
    })?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| refused(format!("{} is not a manifest: {e}", path.display())))?;
    if manifest.format != FORMAT {
        return Err(refused(format!(
            "manifest format {} is not {FORMAT}, the one this build reads",
            manifest.format
        )));
    }
    if manifest.file.contains(['/', '\\']) || manifest.file.starts_with('.') {
        return Err(refused("the manifest names a file outside its directory"));
    }
    Ok(manifest)
}

/// The size and SHA-256 (hex) of a file, read a block at a time.
async fn checksum(path: &Path) -> AppResult<(u64, String)> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| refused(format!("cannot open {}: {e}", path.display())))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = file
            .read(&mut buffer)
            .await
            .map_err(|e| io("cannot read", path, e))?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        hasher.update(&buffer[..n]);
    }
    Ok((bytes, hex::encode(hasher.finalize())))
}

/// Flushes a file (or a directory's entries) to disk.
async fn sync(path: &Path) -> AppResult<()> {
    tokio::fs::File::open(path)
        .await
        .map_err(|e| io("cannot open", path, e))?
        .sync_all()
        .await
        .map_err(|e| io("cannot sync", path, e))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Runs a PostgreSQL client tool on `database_url` to completion; its standard error is the
/// failure's message. The password travels in `PGPASSWORD`, never in the arguments (which
/// every local user can read), and lines naming the URL are left out of the message.
async fn run_tool(tool: &str, database_url: &str, args: &[&std::ffi::OsStr]) -> AppResult<()> {
    let mut url = url::Url::parse(database_url)
        .map_err(|e| refused(format!("database_url is not a URL: {e}")))?;
    let password = url.password().map(percent_decode);
    let _ = url.set_password(None);
    let mut command = tokio::process::Command::new(tool);
    command
        .args(args)
        .arg(format!("--dbname={url}"))
        .stdin(Stdio::null());
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    let output = command.output().await.map_err(|e| {
        AppError::new(
            ErrorCode::BackupToolUnavailable,
            format!(
                "{tool} cannot run ({e}): install the PostgreSQL client tools of the \
                     server's major version (Debian: postgresql-client), or see \
                     docs/operations.md for backing up with the server's own tools"
            ),
        )
    })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("postgres://") && !l.contains("postgresql://"))
        .collect();
    Err(AppError::new(
        ErrorCode::BackupToolUnavailable,
        format!("{tool} failed ({}): {}", output.status, said.join(" / ")),
    ))
}

/// A URL component with its `%XX` escapes decoded.
fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_password_is_decoded_for_pgpassword() {
        assert_eq!(percent_decode("p%40ss+w%2Fd"), "p@ss+w/d");
        assert_eq!(percent_decode("plain"), "plain");
    }
}
