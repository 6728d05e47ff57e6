//! The ledger invariant, checked by recomputing: every batch equals the sum of its movements,
//! every level equals the sum of its batches, nothing is negative, nothing reserved exceeds
//! what is on hand, and a batch is closed exactly when it is empty. Reservations: each batch
//! reserves exactly what its active reservations hold (never more than it has), and each level
//! reserves exactly what its batches do.

use depot_domain::AppResult;
use sea_orm::{ConnectionTrait, Statement};
use uuid::Uuid;

use crate::error::db_error;

/// One disagreement found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// A batch's quantity is not the sum of its movements.
    Batch {
        batch: Uuid,
        recorded: i64,
        ledger: i64,
    },
    /// A level's on-hand quantity is not the sum of its batches.
    Level {
        product: Uuid,
        location: Uuid,
        recorded: i64,
        batches: i64,
    },
    /// A batch holds a negative quantity.
    NegativeBatch { batch: Uuid, quantity: i64 },
    /// A level is negative or reserves more than it has.
    Reservation {
        product: Uuid,
        location: Uuid,
        on_hand: i64,
        reserved: i64,
    },
    /// A batch's reserved quantity is not what its active reservations hold, or exceeds what
    /// it has.
    BatchReserved {
        batch: Uuid,
        quantity: i64,
        reserved: i64,
        reservations: i64,
    },
    /// A level's reserved quantity is not the sum of its batches' reservations.
    LevelReserved {
        product: Uuid,
        location: Uuid,
        recorded: i64,
        batches: i64,
    },
    /// A batch's status disagrees with its quantity (closed with stock, open when empty).
    Status {
        batch: Uuid,
        status: String,
        quantity: i64,
    },
}

/// How much was checked, and every disagreement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    pub batches: i64,
    pub levels: i64,
    pub movements: i64,
    pub drifts: Vec<Drift>,
}

async fn rows(conn: &impl ConnectionTrait, sql: &str) -> AppResult<Vec<sea_orm::QueryResult>> {
    conn.query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .map_err(db_error)
}

async fn count(conn: &impl ConnectionTrait, table: &str) -> AppResult<i64> {
    let found = rows(conn, &format!("SELECT COUNT(*) AS n FROM {table}")).await?;
    found
        .first()
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()
        .map_err(db_error)
        .map(Option::unwrap_or_default)
}

/// Recomputes every batch and level from the ledger (one consistent read).
pub async fn check(conn: &impl ConnectionTrait) -> AppResult<Findings> {
    let mut findings = Findings {
        batches: count(conn, "batches").await?,
        levels: count(conn, "stock_levels").await?,
        movements: count(conn, "stock_movements").await?,
        drifts: Vec::new(),
    };
    let drifts = &mut findings.drifts;
    for r in rows(
        conn,
        "SELECT b.id, b.quantity, COALESCE(m.total, 0) AS ledger FROM batches b \
         LEFT JOIN (SELECT batch_id, CAST(SUM(quantity) AS BIGINT) AS total \
                    FROM stock_movements GROUP BY batch_id) m ON m.batch_id = b.id \
         WHERE b.quantity <> COALESCE(m.total, 0)",
    )
    .await?
    {
        drifts.push(Drift::Batch {
            batch: r.try_get("", "id").map_err(db_error)?,
            recorded: r.try_get("", "quantity").map_err(db_error)?,
            ledger: r.try_get("", "ledger").map_err(db_error)?,
        });
    }
    // Levels against their batches, including batches with no level row at all.
    for r in rows(
        conn,
        "SELECT s.product_id, s.location_id, COALESCE(l.on_hand, 0) AS recorded, s.total \
         FROM (SELECT product_id, location_id, CAST(SUM(quantity) AS BIGINT) AS total \
               FROM batches GROUP BY product_id, location_id) s \
         LEFT JOIN stock_levels l ON l.product_id = s.product_id AND l.location_id = s.location_id \
         WHERE COALESCE(l.on_hand, 0) <> s.total \
         UNION ALL \
         SELECT l.product_id, l.location_id, l.on_hand AS recorded, 0 AS total \
         FROM stock_levels l WHERE l.on_hand <> 0 AND NOT EXISTS \
           (SELECT 1 FROM batches b WHERE b.product_id = l.product_id AND b.location_id = l.location_id)",
    )
    .await?
    {
        drifts.push(Drift::Level {
            product: r.try_get("", "product_id").map_err(db_error)?,
            location: r.try_get("", "location_id").map_err(db_error)?,
            recorded: r.try_get("", "recorded").map_err(db_error)?,
            batches: r.try_get("", "total").map_err(db_error)?,
        });
    }
    for r in rows(conn, "SELECT id, quantity FROM batches WHERE quantity < 0").await? {
        drifts.push(Drift::NegativeBatch {
            batch: r.try_get("", "id").map_err(db_error)?,
            quantity: r.try_get("", "quantity").map_err(db_error)?,
        });
    }
    for r in rows(
        conn,
        "SELECT product_id, location_id, on_hand, reserved FROM stock_levels \
         WHERE on_hand < 0 OR reserved < 0 OR reserved > on_hand",
    )
    .await?
    {
        drifts.push(Drift::Reservation {
            product: r.try_get("", "product_id").map_err(db_error)?,
            location: r.try_get("", "location_id").map_err(db_error)?,
            on_hand: r.try_get("", "on_hand").map_err(db_error)?,
            reserved: r.try_get("", "reserved").map_err(db_error)?,
        });
    }
    for r in rows(
        conn,
        "SELECT id, status, quantity FROM batches \
         WHERE (status = 'closed' AND quantity <> 0) OR (status = 'open' AND quantity = 0)",
    )
    .await?
    {
        drifts.push(Drift::Status {
            batch: r.try_get("", "id").map_err(db_error)?,
            status: r.try_get("", "status").map_err(db_error)?,
            quantity: r.try_get("", "quantity").map_err(db_error)?,
        });
    }
    for r in rows(
        conn,
        "SELECT b.id, b.quantity, b.reserved, COALESCE(r.total, 0) AS held FROM batches b \
         LEFT JOIN (SELECT batch_id, CAST(SUM(quantity) AS BIGINT) AS total FROM reservations \
                    WHERE status = 'active' GROUP BY batch_id) r ON r.batch_id = b.id \
         WHERE b.reserved <> COALESCE(r.total, 0) OR b.reserved > b.quantity",
    )
    .await?
    {
        drifts.push(Drift::BatchReserved {
            batch: r.try_get("", "id").map_err(db_error)?,
            quantity: r.try_get("", "quantity").map_err(db_error)?,
            reserved: r.try_get("", "reserved").map_err(db_error)?,
            reservations: r.try_get("", "held").map_err(db_error)?,
        });
    }
    for r in rows(
        conn,
        "SELECT l.product_id, l.location_id, l.reserved AS recorded, \
                COALESCE(b.total, 0) AS total FROM stock_levels l \
         LEFT JOIN (SELECT product_id, location_id, CAST(SUM(reserved) AS BIGINT) AS total \
                    FROM batches GROUP BY product_id, location_id) b \
           ON b.product_id = l.product_id AND b.location_id = l.location_id \
         WHERE l.reserved <> COALESCE(b.total, 0)",
    )
    .await?
    {
        drifts.push(Drift::LevelReserved {
            product: r.try_get("", "product_id").map_err(db_error)?,
            location: r.try_get("", "location_id").map_err(db_error)?,
            recorded: r.try_get("", "recorded").map_err(db_error)?,
            batches: r.try_get("", "total").map_err(db_error)?,
        });
    }
    Ok(findings)
}
