//! CRM: customers owned by sales users, their contacts and activities.
//!
//! A customer is visible to its owner and to holders of `customers.manage_all`; to anyone else
//! it does not exist (404, through `Principal::check_owner`), and neither do its contacts and
//! activities. Reassigning moves the customer and its open activities in one unit of work.
//! Personal data (email, phone, address) never reaches a log line nor the audit log.

mod events;
mod views;

use chrono::NaiveDate;
use depot_domain::auth::Permission;
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::state::UserStatus;
use depot_domain::trade::contact::validate_contact;
use depot_domain::trade::{ActivityFilter, ActivityKind, CustomerFilter, CustomerStatus};
use depot_domain::{AppError, AppResult, ErrorCode, Validator};
use depot_store::entity::{activity, customer, customer_contact};
use depot_store::repo::{customers, roles, sales_orders, users};
use uuid::Uuid;

pub use self::views::{ActivityView, ContactView, CustomerView};
use crate::audit::AuditEntry;
use crate::auth::principal::Principal;
use crate::catalog::{ADDRESS_MAX, NAME_MAX, map_page};
use crate::client::ClientInfo;
use crate::uow::{UnitOfWork, Writer, audited};

/// Most tags on one customer, and the longest tag.
pub const TAGS_MAX: usize = 20;
pub const TAG_MAX: usize = 50;
/// Longest activity subject and body.
pub const SUBJECT_MAX: usize = 200;
pub const BODY_MAX: usize = 10_000;

#[derive(Debug, Clone)]
pub struct NewCustomer {
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub status: CustomerStatus,
    pub tags: Vec<String>,
    /// Defaults to the caller; someone else only with `customers.manage_all`.
    pub owner_id: Option<Uuid>,
}

/// Changes to a customer; `Some(None)` clears a nullable field. A new owner goes through
/// [`CustomerService::reassign`].
#[derive(Debug, Clone, Default)]
pub struct CustomerPatch {
    pub name: Option<String>,
    pub email: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub address: Option<Option<String>>,
    pub status: Option<CustomerStatus>,
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct NewContact {
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub role: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ContactPatch {
    pub name: Option<String>,
    pub email: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub role: Option<Option<String>>,
}

#[derive(Debug, Clone)]
pub struct NewActivity {
    pub kind: ActivityKind,
    pub subject: String,
    pub body: Option<String>,
    pub due_date: Option<NaiveDate>,
    pub done: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ActivityPatch {
    pub kind: Option<ActivityKind>,
    pub subject: Option<String>,
    pub body: Option<Option<String>>,
    pub due_date: Option<Option<NaiveDate>>,
    pub done: Option<bool>,
}

fn customer_not_found() -> AppError {
    AppError::new(ErrorCode::CustomersNotFound, "no such customer")
}

fn contact_not_found() -> AppError {
    AppError::new(
        ErrorCode::ContactsNotFound,
        "no such contact of this customer",
    )
}

fn activity_not_found() -> AppError {
    AppError::new(
        ErrorCode::ActivitiesNotFound,
        "no such activity of this customer",
    )
}

fn validate_tags(v: &mut Validator, tags: &[String]) {
    v.check(
        tags.len() <= TAGS_MAX,
        "tags",
        "count",
        "must have at most 20 tags",
    );
    for (i, tag) in tags.iter().enumerate() {
        v.line(&format!("tags[{i}]"), tag, 1, TAG_MAX);
    }
}

/// Tags as stored: trimmed, lower-cased, each once, in the order given.
fn normalise_tags(tags: Vec<String>) -> String {
    let mut seen = Vec::new();
    for tag in tags {
        let tag = tag.trim().to_lowercase();
        if !seen.contains(&tag) {
            seen.push(tag);
        }
    }
    serde_json::to_string(&seen).unwrap_or_else(|_| "[]".into())
}

fn search_text(c: &customer::Model) -> String {
    format!(
        "{}\n{}\n{}",
        c.name,
        c.email.as_deref().unwrap_or_default(),
        c.phone.as_deref().unwrap_or_default()
    )
    .to_lowercase()
}

#[derive(Clone)]
pub struct CustomerService {
    writer: Writer,
}

impl CustomerService {
    pub fn new(writer: Writer) -> Self {
        Self { writer }
    }

    fn reader(&self) -> &depot_store::DatabaseConnection {
        self.writer.db().reader()
    }

    /// The customer if `principal` may see it, else `customers.not_found`.
    pub(crate) async fn visible(
        conn: &impl depot_store::ConnectionTrait,
        principal: &Principal,
        id: Uuid,
    ) -> AppResult<customer::Model> {
        let row = customers::get(conn, id)
            .await?
            .ok_or_else(customer_not_found)?;
        principal.check_owner(
            row.owner_id,
            Permission::CustomersManageAll,
            customer_not_found(),
        )?;
        Ok(row)
    }

    /// [`Self::visible`], with the customer's row locked until the unit of work ends: every
    /// change of a customer, its parts or its owner goes through here.
    pub(crate) async fn visible_locked(
        uow: &UnitOfWork,
        principal: &Principal,
        id: Uuid,
    ) -> AppResult<customer::Model> {
        let row = customers::lock(uow.tx(), id)
            .await?
            .ok_or_else(customer_not_found)?;
        principal.check_owner(
            row.owner_id,
            Permission::CustomersManageAll,
            customer_not_found(),
        )?;
        Ok(row)
    }

    pub async fn list(
        &self,
        principal: &Principal,
        filter: &CustomerFilter,
        page: &PageRequest,
    ) -> AppResult<Page<CustomerView>> {
        let visible_to =
            (!principal.has(Permission::CustomersManageAll)).then_some(principal.user_id);
        let page = customers::list(self.reader(), filter, visible_to, page).await?;
        Ok(map_page(page, views::customer))
    }

    pub async fn get(&self, principal: &Principal, id: Uuid) -> AppResult<CustomerView> {
        Ok(views::customer(
            Self::visible(self.reader(), principal, id).await?,
        ))
    }

    pub async fn create(
        &self,
        principal: &Principal,
        new: NewCustomer,
        client: &ClientInfo,
    ) -> AppResult<CustomerView> {
        let mut v = Validator::new();
        v.line("name", &new.name, 1, NAME_MAX);
        validate_contact(&mut v, new.email.as_deref(), new.phone.as_deref());
        if let Some(address) = &new.address {
            v.text("address", address, ADDRESS_MAX);
        }
        validate_tags(&mut v, &new.tags);
        v.finish()?;
        let owner = new.owner_id.unwrap_or(principal.user_id);
        if owner != principal.user_id {
            principal.require(Permission::CustomersManageAll)?;
        }
        let uow = self.writer.begin(principal.actor(), client).await?;
        if owner != principal.user_id {
            ensure_owner(&uow, owner).await?;
        }
        let mut row = customer::Model {
            id: depot_domain::id::new_id(),
            name_key: new.name.to_lowercase(),
            name: new.name,
            email: new.email,
            phone: new.phone,
            address: new.address,
            status: new.status.as_str().to_owned(),
            tags: normalise_tags(new.tags),
            owner_id: owner,
            search: String::new(),
            created_at: uow.now(),
            updated_at: uow.now(),
        };
        row.search = search_text(&row);
        let shown = views::customer(customers::insert(uow.tx(), row).await?);
        audited(
            uow,
            "customer.created",
            ("customer", shown.id),
            serde_json::Value::Null,
            views::redacted(&shown),
        )
        .await?;
        Ok(shown)
    }

    pub async fn update(
        &self,
        principal: &Principal,
        id: Uuid,
        patch: CustomerPatch,
        client: &ClientInfo,
    ) -> AppResult<CustomerView> {
        let mut v = Validator::new();
        if let Some(name) = &patch.name {
            v.line("name", name, 1, NAME_MAX);
        }
        validate_contact(
            &mut v,
            patch.email.as_ref().and_then(Option::as_deref),
            patch.phone.as_ref().and_then(Option::as_deref),
        );
        if let Some(Some(address)) = &patch.address {
            v.text("address", address, ADDRESS_MAX);
        }
        if let Some(tags) = &patch.tags {
            validate_tags(&mut v, tags);
        }
        v.finish()?;
        let uow = self.writer.begin(principal.actor(), client).await?;
        let mut row = Self::visible_locked(&uow, principal, id).await?;
        let before = views::customer(row.clone());
        if let Some(name) = patch.name {
            row.name_key = name.to_lowercase();
            row.name = name;
        }
        if let Some(email) = patch.email {
            row.email = email;
        }
        if let Some(phone) = patch.phone {
            row.phone = phone;
        }
        if let Some(address) = patch.address {
            row.address = address;
        }
        if let Some(status) = patch.status {
            row.status = status.as_str().to_owned();
        }
        if let Some(tags) = patch.tags {
            row.tags = normalise_tags(tags);
        }
        row.search = search_text(&row);
        row.updated_at = uow.now();
        let shown = views::customer(customers::save(uow.tx(), row).await?);
        audited(
            uow,
            "customer.updated",
            ("customer", id),
            views::redacted(&before),
            views::redacted(&shown),
        )
        .await?;
        Ok(shown)
    }

    /// Deletes a customer no sales order names (with its contacts and activities).
    pub async fn delete(
        &self,
        principal: &Principal,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<()> {
        let uow = self.writer.begin(principal.actor(), client).await?;
        let row = Self::visible_locked(&uow, principal, id).await?;
        if customers::has_orders(uow.tx(), id).await? {
            return Err(AppError::new(
                ErrorCode::CustomersInUse,
                "the customer has sales orders: make it inactive instead",
            ));
        }
        customers::delete(uow.tx(), id).await?;
        audited(
            uow,
            "customer.deleted",
            ("customer", id),
            views::redacted(&views::customer(row)),
            serde_json::Value::Null,
        )
        .await
    }

    /// Gives the customer and its open activities to `owner` (an active user who can hold
    /// customers), in one unit of work.
    pub async fn reassign(
        &self,
        principal: &Principal,
        id: Uuid,
        owner: Uuid,
        client: &ClientInfo,
    ) -> AppResult<CustomerView> {
        principal.require(Permission::CustomersManageAll)?;
        let mut uow = self.writer.begin(principal.actor(), client).await?;
        let mut row = Self::visible_locked(&uow, principal, id).await?;
        ensure_owner(&uow, owner).await?;
        let from = row.owner_id;
        let now = uow.now();
        let moved = customers::reassign_open_activities(uow.tx(), id, owner, now).await?;
        let orders = sales_orders::reassign_owner(uow.tx(), id, owner, now).await?;
        row.owner_id = owner;
        row.updated_at = now;
        let shown = views::customer(customers::save(uow.tx(), row).await?);
        uow.emit(&events::reassigned(id, from, owner, moved, now));
        uow.audit(
            AuditEntry::new("customer.reassigned")
                .target("customer", id)
                .change(
                    serde_json::json!({ "owner_id": from }),
                    serde_json::json!({ "owner_id": owner }),
                )
                .details(serde_json::json!({ "activities_moved": moved, "orders_moved": orders })),
        )
        .await?;
        uow.commit().await?;
        Ok(shown)
    }

    // --- contacts ---

    pub async fn contacts(
        &self,
        principal: &Principal,
        customer: Uuid,
    ) -> AppResult<Vec<ContactView>> {
        Self::visible(self.reader(), principal, customer).await?;
        Ok(customers::contacts_of(self.reader(), customer)
            .await?
            .into_iter()
            .map(views::contact)
            .collect())
    }

    pub async fn add_contact(
        &self,
        principal: &Principal,
        customer: Uuid,
        new: NewContact,
        client: &ClientInfo,
    ) -> AppResult<ContactView> {
        let mut v = Validator::new();
        v.line("name", &new.name, 1, NAME_MAX);
        validate_contact(&mut v, new.email.as_deref(), new.phone.as_deref());
        if let Some(role) = &new.role {
            v.line("role", role, 1, NAME_MAX);
        }
        v.finish()?;
        let uow = self.writer.begin(principal.actor(), client).await?;
        Self::visible_locked(&uow, principal, customer).await?;
        let shown = views::contact(
            customers::insert_contact(
                uow.tx(),
                customer_contact::Model {
                    id: depot_domain::id::new_id(),
                    customer_id: customer,
                    name: new.name,
                    email: new.email,
                    phone: new.phone,
                    role: new.role,
                    created_at: uow.now(),
                    updated_at: uow.now(),
                },
            )
            .await?,
        );
        audited(
            uow,
            "customer.contact_added",
            ("customer", customer),
            serde_json::Value::Null,
            views::redacted(&shown),
        )
        .await?;
        Ok(shown)
    }

    pub async fn update_contact(
        &self,
        principal: &Principal,
        customer: Uuid,
        id: Uuid,
        patch: ContactPatch,
        client: &ClientInfo,
    ) -> AppResult<ContactView> {
        let mut v = Validator::new();
        if let Some(name) = &patch.name {
            v.line("name", name, 1, NAME_MAX);
        }
        validate_contact(
            &mut v,
            patch.email.as_ref().and_then(Option::as_deref),
            patch.phone.as_ref().and_then(Option::as_deref),
        );
        if let Some(Some(role)) = &patch.role {
            v.line("role", role, 1, NAME_MAX);
        }
        v.finish()?;
        let uow = self.writer.begin(principal.actor(), client).await?;
        Self::visible_locked(&uow, principal, customer).await?;
        let mut row = customers::get_contact(uow.tx(), customer, id)
            .await?
            .ok_or_else(contact_not_found)?;
        let before = views::contact(row.clone());
        if let Some(name) = patch.name {
            row.name = name;
        }
        if let Some(email) = patch.email {
            row.email = email;
        }
        if let Some(phone) = patch.phone {
            row.phone = phone;
        }
        if let Some(role) = patch.role {
            row.role = role;
        }
        row.updated_at = uow.now();
        let shown = views::contact(customers::save_contact(uow.tx(), row).await?);
        audited(
            uow,
            "customer.contact_updated",
            ("customer", customer),
            views::redacted(&before),
            views::redacted(&shown),
        )
        .await?;
        Ok(shown)
    }

    pub async fn delete_contact(
        &self,
        principal: &Principal,
        customer: Uuid,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<()> {
        let uow = self.writer.begin(principal.actor(), client).await?;
        Self::visible_locked(&uow, principal, customer).await?;
        let row = customers::get_contact(uow.tx(), customer, id)
            .await?
            .ok_or_else(contact_not_found)?;
        customers::delete_contact(uow.tx(), id).await?;
        audited(
            uow,
            "customer.contact_removed",
            ("customer", customer),
            views::redacted(&views::contact(row)),
            serde_json::Value::Null,
        )
        .await
    }

    // --- activities ---

    pub async fn activities(
        &self,
        principal: &Principal,
        customer: Uuid,
        filter: &ActivityFilter,
        page: &PageRequest,
    ) -> AppResult<Page<ActivityView>> {
        Self::visible(self.reader(), principal, customer).await?;
        let page = customers::activities_of(self.reader(), customer, filter, page).await?;
        Ok(map_page(page, views::activity))
    }

    pub async fn add_activity(
        &self,
        principal: &Principal,
        customer: Uuid,
        new: NewActivity,
        client: &ClientInfo,
    ) -> AppResult<ActivityView> {
        let mut v = Validator::new();
        v.line("subject", &new.subject, 1, SUBJECT_MAX);
        if let Some(body) = &new.body {
            v.text("body", body, BODY_MAX);
        }
        v.finish()?;
        let uow = self.writer.begin(principal.actor(), client).await?;
        let owner = Self::visible_locked(&uow, principal, customer)
            .await?
            .owner_id;
        let now = uow.now();
        let shown = views::activity(
            customers::insert_activity(
                uow.tx(),
                activity::Model {
                    id: depot_domain::id::new_id(),
                    customer_id: customer,
                    owner_id: owner,
                    kind: new.kind.as_str().to_owned(),
                    subject: new.subject,
                    body: new.body,
                    due_date: new.due_date,
                    done: new.done,
                    done_at: new.done.then_some(now),
                    created_by: principal.actor().user_id(),
                    created_at: now,
                    updated_at: now,
                },
            )
            .await?,
        );
        audited(
            uow,
            "activity.created",
            ("activity", shown.id),
            serde_json::Value::Null,
            serde_json::json!({ "customer_id": customer, "kind": shown.kind, "done": shown.done }),
        )
        .await?;
        Ok(shown)
    }

    pub async fn update_activity(
        &self,
        principal: &Principal,
        customer: Uuid,
        id: Uuid,
        patch: ActivityPatch,
        client: &ClientInfo,
    ) -> AppResult<ActivityView> {
        let mut v = Validator::new();
        if let Some(subject) = &patch.subject {
            v.line("subject", subject, 1, SUBJECT_MAX);
        }
        if let Some(Some(body)) = &patch.body {
            v.text("body", body, BODY_MAX);
        }
        v.finish()?;
        let uow = self.writer.begin(principal.actor(), client).await?;
        Self::visible_locked(&uow, principal, customer).await?;
        let mut row = customers::get_activity(uow.tx(), customer, id)
            .await?
            .ok_or_else(activity_not_found)?;
        let before =
            serde_json::json!({ "kind": row.kind, "done": row.done, "due_date": row.due_date });
        if let Some(kind) = patch.kind {
            row.kind = kind.as_str().to_owned();
        }
        if let Some(subject) = patch.subject {
            row.subject = subject;
        }
        if let Some(body) = patch.body {
            row.body = body;
        }
        if let Some(due) = patch.due_date {
            row.due_date = due;
        }
        if let Some(done) = patch.done
            && done != row.done
        {
            row.done = done;
            row.done_at = done.then(|| uow.now());
        }
        row.updated_at = uow.now();
        let shown = views::activity(customers::save_activity(uow.tx(), row).await?);
        audited(
            uow,
            "activity.updated",
            ("activity", id),
            before,
            serde_json::json!({ "kind": shown.kind, "done": shown.done, "due_date": shown.due_date }),
        )
        .await?;
        Ok(shown)
    }

    pub async fn delete_activity(
        &self,
        principal: &Principal,
        customer: Uuid,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<()> {
        let uow = self.writer.begin(principal.actor(), client).await?;
        Self::visible_locked(&uow, principal, customer).await?;
        let row = customers::get_activity(uow.tx(), customer, id)
            .await?
            .ok_or_else(activity_not_found)?;
        customers::delete_activity(uow.tx(), id).await?;
        audited(
            uow,
            "activity.deleted",
            ("activity", id),
            serde_json::json!({ "customer_id": customer, "kind": row.kind, "done": row.done }),
            serde_json::Value::Null,
        )
        .await
    }
}

/// The new owner must be an active user who can hold customers (`customers.manage`).
async fn ensure_owner(uow: &UnitOfWork, owner: Uuid) -> AppResult<()> {
    let invalid = || {
        AppError::new(
            ErrorCode::CustomersInvalidOwner,
            "the owner must be an active user who holds customers.manage",
        )
        .with_details(serde_json::json!({ "field": "owner_id" }))
    };
    let user = users::get(uow.tx(), owner).await?.ok_or_else(invalid)?;
    if user.status != UserStatus::Active.as_str() {
        return Err(invalid());
    }
    let held = roles::permissions_of_user(uow.tx(), owner).await?;
    if !held.contains(Permission::CustomersManage.code()) {
        return Err(invalid());
    }
    Ok(())
}
