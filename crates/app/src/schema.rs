//! The schema and the data every installation needs: migrations and seeding, in one place.

use std::sync::Arc;

use depot_domain::{Actor, AppResult, Clock};
use depot_store::{Db, MigrationState};

use crate::client::ClientInfo;
use crate::roles;
use crate::uow::{RelayWaker, Writer};

/// Migrates and seeds. Seeding (the built-in roles) happens here and nowhere else.
#[derive(Clone)]
pub struct SchemaService {
    writer: Writer,
}

impl SchemaService {
    pub fn new(writer: Writer) -> Self {
        Self { writer }
    }

    /// For `depot migrate`, which runs without an application context.
    pub fn standalone(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self::new(Writer::new(db, clock, RelayWaker::default()))
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        self.writer.db().backend().as_str()
    }

    /// Which migrations are applied and pending.
    pub async fn state(&self) -> AppResult<MigrationState> {
        self.writer.db().migration_state().await
    }

    /// Applies every pending migration, then seeds.
    pub async fn migrate_up(&self) -> AppResult<MigrationState> {
        let state = self.writer.db().migrate_up().await?;
        self.seed().await?;
        Ok(state)
    }

    /// Rolls back the last `steps` migrations (dev only; the CLI refuses it in prod).
    pub async fn migrate_down(&self, steps: u32) -> AppResult<MigrationState> {
        self.writer.db().migrate_down(steps).await
    }

    /// Creates what every installation needs and does not have yet — the built-in roles —
    /// with the injected clock. Idempotent; runs after migrations, at start, in
    /// `depot migrate up` and before the `depot admin` user commands.
    pub async fn seed(&self) -> AppResult<()> {
        let uow = self
            .writer
            .begin(Actor::System("seed"), &ClientInfo::local())
            .await?;
        roles::seed_built_ins(&uow).await?;
        uow.commit().await
    }

    /// Closes the database pools.
    pub async fn close(&self) {
        self.writer.db().close().await;
    }
}
