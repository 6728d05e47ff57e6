//! Customers, their contacts and their activities.
//!
//! Who may see a customer is the service's decision; the list takes it as `visible_to` (the
//! owner whose customers alone are listed, or `None` for every customer).

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::trade::{ActivityFilter, CustomerFilter};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Value,
};
use uuid::Uuid;

use super::{delete_where, insert_model, save_model};
use crate::entity::{activity, customer, customer_contact, sales_order};
use crate::error::db_error;
use crate::keyset::{Direction, page_after};
use crate::search::containing;

pub async fn insert(
    conn: &impl ConnectionTrait,
    row: customer::Model,
) -> AppResult<customer::Model> {
    insert_model::<customer::ActiveModel>(conn, row).await
}

pub async fn save(conn: &impl ConnectionTrait, row: customer::Model) -> AppResult<customer::Model> {
    save_model::<customer::ActiveModel>(conn, row).await
}

pub async fn get(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<customer::Model>> {
    customer::Entity::find_by_id(id)
        .one(conn)
        .await
        .map_err(db_error)
}

/// The customer with its row locked for the rest of the transaction (every change of a
/// customer, its owner or its activities goes through it, so none overwrites another).
pub async fn lock(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<customer::Model>> {
    customer::Entity::find_by_id(id)
        .lock_exclusive()
        .one(conn)
        .await
        .map_err(db_error)
}

pub async fn delete(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<u64> {
    delete_where::<customer::Entity>(conn, customer::Column::Id.eq(id)).await
}

/// Whether any sales order names the customer.
pub async fn has_orders(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<bool> {
    Ok(sales_order::Entity::find()
        .filter(sales_order::Column::CustomerId.eq(id))
        .count(conn)
        .await
        .map_err(db_error)?
        > 0)
}

/// Customers by name (case-insensitively), then id.
pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &CustomerFilter,
    visible_to: Option<Uuid>,
    page: &PageRequest,
) -> AppResult<Page<customer::Model>> {
    use customer::Column as C;
    let cursor: Option<(String, Uuid)> = page.decode_cursor()?;
    let mut select = customer::Entity::find();
    if let Some(owner) = visible_to {
        select = select.filter(C::OwnerId.eq(owner));
    }
    if let Some(owner) = filter.owner_id {
        select = select.filter(C::OwnerId.eq(owner));
    }
    if let Some(status) = filter.status {
        select = select.filter(C::Status.eq(status.as_str()));
    }
    if let Some(search) = &filter.search {
        select = select.filter(C::Search.like(containing(&search.to_lowercase())));
    }
    if let Some(tag) = &filter.tag {
        // Tags are stored as a JSON array of strings: match the quoted element.
        let quoted = serde_json::to_string(tag).unwrap_or_default();
        select = select.filter(C::Tags.like(containing(&quoted)));
    }
    let rows = page_after(
        select,
        C::NameKey,
        C::Id,
        Direction::Asc,
        cursor.map(|(key, id)| (Value::from(key), Value::from(id))),
        page.limit,
    )
    .all(conn)
    .await
    .map_err(db_error)?;
    Page::from_overfetch(rows, page, |c: &customer::Model| (c.name_key.clone(), c.id))
}

// --- contacts ---

pub async fn insert_contact(
    conn: &impl ConnectionTrait,
    row: customer_contact::Model,
) -> AppResult<customer_contact::Model> {
    insert_model::<customer_contact::ActiveModel>(conn, row).await
}

pub async fn save_contact(
    conn: &impl ConnectionTrait,
    row: customer_contact::Model,
) -> AppResult<customer_contact::Model> {
    save_model::<customer_contact::ActiveModel>(conn, row).await
}

/// A contact of this customer.
pub async fn get_contact(
    conn: &impl ConnectionTrait,
    customer: Uuid,
    id: Uuid,
) -> AppResult<Option<customer_contact::Model>> {
    customer_contact::Entity::find_by_id(id)
        .filter(customer_contact::Column::CustomerId.eq(customer))
        .one(conn)
        .await
        .map_err(db_error)
}

pub async fn delete_contact(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<u64> {
    delete_where::<customer_contact::Entity>(conn, customer_contact::Column::Id.eq(id)).await
}

/// A customer's contacts by name.
pub async fn contacts_of(
    conn: &impl ConnectionTrait,
    customer: Uuid,
) -> AppResult<Vec<customer_contact::Model>> {
    customer_contact::Entity::find()
        .filter(customer_contact::Column::CustomerId.eq(customer))
        .order_by_asc(customer_contact::Column::Name)
        .order_by_asc(customer_contact::Column::Id)
        .all(conn)
        .await
        .map_err(db_error)
}

// --- activities ---

pub async fn insert_activity(
    conn: &impl ConnectionTrait,
    row: activity::Model,
) -> AppResult<activity::Model> {
    insert_model::<activity::ActiveModel>(conn, row).await
}

pub async fn save_activity(
    conn: &impl ConnectionTrait,
    row: activity::Model,
) -> AppResult<activity::Model> {
    save_model::<activity::ActiveModel>(conn, row).await
}

/// An activity of this customer.
pub async fn get_activity(
    conn: &impl ConnectionTrait,
    customer: Uuid,
    id: Uuid,
) -> AppResult<Option<activity::Model>> {
    activity::Entity::find_by_id(id)
        .filter(activity::Column::CustomerId.eq(customer))
        .one(conn)
        .await
        .map_err(db_error)
}

pub async fn delete_activity(conn: &impl ConnectionTrait, id: Uuid) -> AppResult<u64> {
    delete_where::<activity::Entity>(conn, activity::Column::Id.eq(id)).await
}

/// A customer's activities, newest first.
pub async fn activities_of(
    conn: &impl ConnectionTrait,
    customer: Uuid,
    filter: &ActivityFilter,
    page: &PageRequest,
) -> AppResult<Page<activity::Model>> {
    use activity::Column as C;
    let cursor: Option<(DateTime<Utc>, Uuid)> = page.decode_cursor()?;
    let mut select = activity::Entity::find().filter(C::CustomerId.eq(customer));
    if let Some(kind) = filter.kind {
        select = select.filter(C::Kind.eq(kind.as_str()));
    }
    if let Some(done) = filter.done {
        select = select.filter(C::Done.eq(done));
    }
    if let Some(day) = filter.due_before {
        select = select.filter(C::DueDate.lte(day));
    }
    let rows = page_after(
        select,
        C::CreatedAt,
        C::Id,
        Direction::Desc,
        cursor.map(|(at, id)| (Value::from(at), Value::from(id))),
        page.limit,
    )
    .all(conn)
    .await
    .map_err(db_error)?;
    Page::from_overfetch(rows, page, |a: &activity::Model| (a.created_at, a.id))
}

/// Gives the customer's open (not done) activities to `owner`; returns how many moved.
pub async fn reassign_open_activities(
    conn: &impl ConnectionTrait,
    customer: Uuid,
    owner: Uuid,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    use activity::Column as C;
    Ok(activity::Entity::update_many()
        .col_expr(C::OwnerId, Expr::value(owner))
        .col_expr(C::UpdatedAt, Expr::value(now))
        .filter(C::CustomerId.eq(customer))
        .filter(C::Done.eq(false))
        .exec(conn)
        .await
        .map_err(db_error)?
        .rows_affected)
}
