//! Purchasing, sales and CRM: suppliers, purchase orders with their lines and receipts,
//! customers with contacts and activities, sales orders with their lines, reservations (per
//! batch), returns and payments. Batches learn how much of them is reserved; outgoing email
//! learns attachments.
//!
//! Money is integer minor units with the order's ISO currency; quantities are thousandths of
//! the product's unit. What a line received, fulfilled or returned never goes below zero nor
//! beyond what it may (`CHECK`), and at most one payment per (order, method) is active (a
//! partial unique index).

use sea_orm_migration::prelude::*;

use super::parts::{
    big, flag, index, one_of, references, restricts, text, text_null, ts, ts_null, uuid, uuid_null,
    uuid_pk,
};
use super::{
    ACTIVITY_KINDS, CUSTOMER_STATUSES, PAYMENT_METHODS, PAYMENT_STATES, PO_STATES,
    RESERVATION_STATUSES, SO_STATES, active_payment_states,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Batches {
    Table,
    Id,
    Reserved,
}

#[derive(DeriveIden, Clone, Copy)]
enum OutboundEmails {
    Table,
    Attachments,
}

#[derive(DeriveIden, Clone, Copy)]
enum Products {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum Locations {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum Suppliers {
    Table,
    Id,
    Name,
    NameKey,
    Email,
    Phone,
    Address,
    Currency,
    LeadTimeDays,
    Active,
    Search,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum PurchaseOrders {
    Table,
    Id,
    SupplierId,
    Currency,
    State,
    ExpectedAt,
    Notes,
    Total,
    CreatedBy,
    SubmittedAt,
    ApprovedBy,
    ApprovedAt,
    SentAt,
    ClosedAt,
    CancelledAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum PurchaseOrderLines {
    Table,
    Id,
    PurchaseOrderId,
    LineNo,
    ProductId,
    Quantity,
    UnitCost,
    Received,
}

#[derive(DeriveIden, Clone, Copy)]
enum Receipts {
    Table,
    Id,
    PurchaseOrderId,
    LocationId,
    ActorId,
    ActorName,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ReceiptLines {
    Table,
    Id,
    ReceiptId,
    LineNo,
    PurchaseOrderLineId,
    ProductId,
    BatchId,
    Quantity,
    Lot,
    Expiry,
}

#[derive(DeriveIden, Clone, Copy)]
enum Customers {
    Table,
    Id,
    Name,
    NameKey,
    Email,
    Phone,
    Address,
    Status,
    Tags,
    OwnerId,
    Search,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum CustomerContacts {
    Table,
    Id,
    CustomerId,
    Name,
    Email,
    Phone,
    Role,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Activities {
    Table,
    Id,
    CustomerId,
    OwnerId,
    Kind,
    Subject,
    Body,
    DueDate,
    Done,
    DoneAt,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum SalesOrders {
    Table,
    Id,
    CustomerId,
    LocationId,
    OwnerId,
    Currency,
    State,
    Notes,
    Total,
    AmountPaid,
    ReservedUntil,
    CreatedBy,
    ConfirmedAt,
    PaidAt,
    FulfilledAt,
    CancelledAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum SalesOrderLines {
    Table,
    Id,
    SalesOrderId,
    LineNo,
    ProductId,
    Quantity,
    UnitPrice,
    Fulfilled,
    Returned,
}

#[derive(DeriveIden, Clone, Copy)]
enum Reservations {
    Table,
    Id,
    SalesOrderId,
    LineId,
    Seq,
    ProductId,
    LocationId,
    BatchId,
    Quantity,
    Returned,
    Status,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum SalesReturns {
    Table,
    Id,
    SalesOrderId,
    ActorId,
    ActorName,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum SalesReturnLines {
    Table,
    Id,
    ReturnId,
    LineNo,
    SalesOrderLineId,
    ProductId,
    Quantity,
    Restock,
    Reason,
}

#[derive(DeriveIden, Clone, Copy)]
enum Payments {
    Table,
    Id,
    SalesOrderId,
    Method,
    State,
    Amount,
    Currency,
    Reference,
    TranId,
    ActorId,
    ActorName,
    Version,
    CreatedAt,
    UpdatedAt,
}

fn non_negative(col: impl IntoIden + Copy + 'static) -> ColumnDef {
    big(col).check(Expr::col(col).gte(0)).take()
}

fn positive(col: impl IntoIden + Copy + 'static) -> ColumnDef {
    big(col).check(Expr::col(col).gt(0)).take()
}

fn counted(col: impl IntoIden + Copy + 'static) -> ColumnDef {
    non_negative(col).default(0).take()
}

fn int(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).integer().not_null().take()
}

fn date_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).date().null().take()
}

async fn indexes(
    manager: &SchemaManager<'_>,
    table: impl IntoIden + Copy,
    list: &[(&str, &[impl IntoIden + Copy])],
) -> Result<(), DbErr> {
    for (name, cols) in list {
        manager.create_index(index(name, table, cols)).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Batches::Table)
                    .add_column(counted(Batches::Reserved))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(OutboundEmails::Table)
                    .add_column(text_null(OutboundEmails::Attachments))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Suppliers::Table)
                    .col(uuid_pk(Suppliers::Id))
                    .col(text(Suppliers::Name))
                    .col(text(Suppliers::NameKey))
                    .col(text_null(Suppliers::Email))
                    .col(text_null(Suppliers::Phone))
                    .col(text_null(Suppliers::Address))
                    .col(text(Suppliers::Currency))
                    .col(ColumnDef::new(Suppliers::LeadTimeDays).integer().null())
                    .col(flag(Suppliers::Active))
                    .col(text(Suppliers::Search))
                    .col(ts(Suppliers::CreatedAt))
                    .col(ts(Suppliers::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        indexes(
            manager,
            Suppliers::Table,
            &[("suppliers_name_idx", &[Suppliers::NameKey, Suppliers::Id])],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(PurchaseOrders::Table)
                    .col(uuid_pk(PurchaseOrders::Id))
                    .col(uuid(PurchaseOrders::SupplierId))
                    .col(text(PurchaseOrders::Currency))
                    .col(one_of(PurchaseOrders::State, PO_STATES, false))
                    .col(date_null(PurchaseOrders::ExpectedAt))
                    .col(text_null(PurchaseOrders::Notes))
                    .col(non_negative(PurchaseOrders::Total))
                    .col(uuid_null(PurchaseOrders::CreatedBy))
                    .col(ts_null(PurchaseOrders::SubmittedAt))
                    .col(uuid_null(PurchaseOrders::ApprovedBy))
                    .col(ts_null(PurchaseOrders::ApprovedAt))
                    .col(ts_null(PurchaseOrders::SentAt))
                    .col(ts_null(PurchaseOrders::ClosedAt))
                    .col(ts_null(PurchaseOrders::CancelledAt))
                    .col(ts(PurchaseOrders::CreatedAt))
                    .col(ts(PurchaseOrders::UpdatedAt))
                    .foreign_key(&mut restricts(
                        "purchase_orders_supplier_fk",
                        (PurchaseOrders::Table, PurchaseOrders::SupplierId),
                        (Suppliers::Table, Suppliers::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        indexes(
            manager,
            PurchaseOrders::Table,
            &[
                (
                    "purchase_orders_created_idx",
                    &[PurchaseOrders::CreatedAt, PurchaseOrders::Id][..],
                ),
                (
                    "purchase_orders_supplier_idx",
                    &[PurchaseOrders::SupplierId],
                ),
                ("purchase_orders_state_idx", &[PurchaseOrders::State]),
            ],
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table(PurchaseOrderLines::Table)
                    .col(uuid_pk(PurchaseOrderLines::Id))
                    .col(uuid(PurchaseOrderLines::PurchaseOrderId))
                    .col(int(PurchaseOrderLines::LineNo))
                    .col(uuid(PurchaseOrderLines::ProductId))
                    .col(positive(PurchaseOrderLines::Quantity))
                    .col(non_negative(PurchaseOrderLines::UnitCost))
                    .col(counted(PurchaseOrderLines::Received))
                    .foreign_key(&mut references(
                        "purchase_order_lines_order_fk",
                        (
                            PurchaseOrderLines::Table,
                            PurchaseOrderLines::PurchaseOrderId,
                        ),
                        (PurchaseOrders::Table, PurchaseOrders::Id),
                    ))
                    .foreign_key(&mut restricts(
                        "purchase_order_lines_product_fk",
                        (PurchaseOrderLines::Table, PurchaseOrderLines::ProductId),
                        (Products::Table, Products::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        indexes(
            manager,
            PurchaseOrderLines::Table,
            &[
                (
                    "purchase_order_lines_order_idx",
                    &[
                        PurchaseOrderLines::PurchaseOrderId,
                        PurchaseOrderLines::LineNo,
                    ][..],
                ),
                (
                    "purchase_order_lines_product_idx",
                    &[PurchaseOrderLines::ProductId],
                ),
            ],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Receipts::Table)
                    .col(uuid_pk(Receipts::Id))
                    .col(uuid(Receipts::PurchaseOrderId))
                    .col(uuid(Receipts::LocationId))
                    .col(uuid_null(Receipts::ActorId))
                    .col(text_null(Receipts::ActorName))
                    .col(ts(Receipts::CreatedAt))
                    .foreign_key(&mut restricts(
                        "receipts_order_fk",
                        (Receipts::Table, Receipts::PurchaseOrderId),
                        (PurchaseOrders::Table, PurchaseOrders::Id),
                    ))
                    .foreign_key(&mut restricts(
                        "receipts_location_fk",
                        (Receipts::Table, Receipts::LocationId),
                        (Locations::Table, Locations::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        indexes(
            manager,
            Receipts::Table,
            &[(
                "receipts_order_idx",
                &[Receipts::PurchaseOrderId, Receipts::CreatedAt],
            )],
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table(ReceiptLines::Table)
                    .col(uuid_pk(ReceiptLines::Id))
                    .col(uuid(ReceiptLines::ReceiptId))
                    .col(int(ReceiptLines::LineNo))
                    .col(uuid(ReceiptLines::PurchaseOrderLineId))
                    .col(uuid(ReceiptLines::ProductId))
                    .col(uuid(ReceiptLines::BatchId))
                    .col(positive(ReceiptLines::Quantity))
                    .col(text_null(ReceiptLines::Lot))
                    .col(date_null(ReceiptLines::Expiry))
                    .foreign_key(&mut references(
                        "receipt_lines_receipt_fk",
                        (ReceiptLines::Table, ReceiptLines::ReceiptId),
                        (Receipts::Table, Receipts::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        indexes(
            manager,
            ReceiptLines::Table,
            &[(
                "receipt_lines_receipt_idx",
                &[ReceiptLines::ReceiptId, ReceiptLines::LineNo],
            )],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Customers::Table)
                    .col(uuid_pk(Customers::Id))
                    .col(text(Customers::Name))
                    .col(text(Customers::NameKey))
                    .col(text_null(Customers::Email))
                    .col(text_null(Customers::Phone))
                    .col(text_null(Customers::Address))
                    .col(one_of(Customers::Status, CUSTOMER_STATUSES, false))
                    .col(text(Customers::Tags))
                    .col(uuid(Customers::OwnerId))
                    .col(text(Customers::Search))
                    .col(ts(Customers::CreatedAt))
                    .col(ts(Customers::UpdatedAt))
                    .foreign_key(&mut restricts(
                        "customers_owner_fk",
                        (Customers::Table, Customers::OwnerId),
                        (Users::Table, Users::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        indexes(
            manager,
            Customers::Table,
            &[
                (
                    "customers_owner_idx",
                    &[Customers::OwnerId, Customers::NameKey][..],
                ),
                ("customers_name_idx", &[Customers::NameKey, Customers::Id]),
            ],
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table(CustomerContacts::Table)
                    .col(uuid_pk(CustomerContacts::Id))
                    .col(uuid(CustomerContacts::CustomerId))
                    .col(text(CustomerContacts::Name))
                    .col(text_null(CustomerContacts::Email))
                    .col(text_null(CustomerContacts::Phone))
                    .col(text_null(CustomerContacts::Role))
                    .col(ts(CustomerContacts::CreatedAt))
                    .col(ts(CustomerContacts::UpdatedAt))
                    .foreign_key(&mut references(
                        "customer_contacts_customer_fk",
                        (CustomerContacts::Table, CustomerContacts::CustomerId),
                        (Customers::Table, Customers::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        indexes(
            manager,
            CustomerContacts::Table,
            &[(
                "customer_contacts_customer_idx",
                &[CustomerContacts::CustomerId],
            )],
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table(Activities::Table)
                    .col(uuid_pk(Activities::Id))
                    .col(uuid(Activities::CustomerId))
                    .col(uuid(Activities::OwnerId))
                    .col(one_of(Activities::Kind, ACTIVITY_KINDS, false))
                    .col(text(Activities::Subject))
                    .col(text_null(Activities::Body))
                    .col(date_null(Activities::DueDate))
                    .col(flag(Activities::Done))
                    .col(ts_null(Activities::DoneAt))
                    .col(uuid_null(Activities::CreatedBy))
                    .col(ts(Activities::CreatedAt))
                    .col(ts(Activities::UpdatedAt))
                    .foreign_key(&mut references(
                        "activities_customer_fk",
                        (Activities::Table, Activities::CustomerId),
                        (Customers::Table, Customers::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        indexes(
            manager,
            Activities::Table,
            &[
                (
                    "activities_customer_idx",
                    &[
                        Activities::CustomerId,
                        Activities::CreatedAt,
                        Activities::Id,
                    ][..],
                ),
                (
                    "activities_owner_idx",
                    &[Activities::OwnerId, Activities::Done],
                ),
            ],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(SalesOrders::Table)
                    .col(uuid_pk(SalesOrders::Id))
                    .col(uuid(SalesOrders::CustomerId))
                    .col(uuid(SalesOrders::LocationId))
                    .col(uuid(SalesOrders::OwnerId))
                    .col(text(SalesOrders::Currency))
                    .col(one_of(SalesOrders::State, SO_STATES, false))
                    .col(text_null(SalesOrders::Notes))
                    .col(non_negative(SalesOrders::Total))
                    .col(counted(SalesOrders::AmountPaid))
                    .col(ts_null(SalesOrders::ReservedUntil))
                    .col(uuid_null(SalesOrders::CreatedBy))
                    .col(ts_null(SalesOrders::ConfirmedAt))
                    .col(ts_null(SalesOrders::PaidAt))
                    .col(ts_null(SalesOrders::FulfilledAt))
                    .col(ts_null(SalesOrders::CancelledAt))
                    .col(ts(SalesOrders::CreatedAt))
                    .col(ts(SalesOrders::UpdatedAt))
                    .foreign_key(&mut restricts(
                        "sales_orders_customer_fk",
                        (SalesOrders::Table, SalesOrders::CustomerId),
                        (Customers::Table, Customers::Id),
                    ))
                    .foreign_key(&mut restricts(
                        "sales_orders_location_fk",
                        (SalesOrders::Table, SalesOrders::LocationId),
                        (Locations::Table, Locations::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        indexes(
            manager,
            SalesOrders::Table,
            &[
                (
                    "sales_orders_created_idx",
                    &[SalesOrders::CreatedAt, SalesOrders::Id][..],
                ),
                ("sales_orders_customer_idx", &[SalesOrders::CustomerId]),
                ("sales_orders_owner_idx", &[SalesOrders::OwnerId]),
                (
                    "sales_orders_reserved_idx",
                    &[SalesOrders::State, SalesOrders::ReservedUntil],
                ),
            ],
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table(SalesOrderLines::Table)
                    .col(uuid_pk(SalesOrderLines::Id))
                    .col(uuid(SalesOrderLines::SalesOrderId))
                    .col(int(SalesOrderLines::LineNo))
                    .col(uuid(SalesOrderLines::ProductId))
                    .col(positive(SalesOrderLines::Quantity))
                    .col(non_negative(SalesOrderLines::UnitPrice))
                    .col(counted(SalesOrderLines::Fulfilled))
                    .col(counted(SalesOrderLines::Returned))
                    .foreign_key(&mut references(
                        "sales_order_lines_order_fk",
                        (SalesOrderLines::Table, SalesOrderLines::SalesOrderId),
                        (SalesOrders::Table, SalesOrders::Id),
                    ))
                    .foreign_key(&mut restricts(
                        "sales_order_lines_product_fk",
                        (SalesOrderLines::Table, SalesOrderLines::ProductId),
                        (Products::Table, Products::Id),
                    ))
                    .check(
                        Expr::col(SalesOrderLines::Fulfilled)
                            .lte(Expr::col(SalesOrderLines::Quantity))
                            .and(
                                Expr::col(SalesOrderLines::Returned)
                                    .lte(Expr::col(SalesOrderLines::Fulfilled)),
                            ),
                    )
                    .to_owned(),
            )
            .await?;
        indexes(
            manager,
            SalesOrderLines::Table,
            &[
                (
                    "sales_order_lines_order_idx",
                    &[SalesOrderLines::SalesOrderId, SalesOrderLines::LineNo][..],
                ),
                (
                    "sales_order_lines_product_idx",
                    &[SalesOrderLines::ProductId],
                ),
            ],
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table(Reservations::Table)
                    .col(uuid_pk(Reservations::Id))
                    .col(uuid(Reservations::SalesOrderId))
                    .col(uuid(Reservations::LineId))
                    .col(int(Reservations::Seq))
                    .col(uuid(Reservations::ProductId))
                    .col(uuid(Reservations::LocationId))
                    .col(uuid(Reservations::BatchId))
                    .col(positive(Reservations::Quantity))
                    .col(counted(Reservations::Returned))
                    .col(one_of(Reservations::Status, RESERVATION_STATUSES, false))
                    .col(ts(Reservations::CreatedAt))
                    .col(ts(Reservations::UpdatedAt))
                    .foreign_key(&mut references(
                        "reservations_order_fk",
                        (Reservations::Table, Reservations::SalesOrderId),
                        (SalesOrders::Table, SalesOrders::Id),
                    ))
                    .foreign_key(&mut restricts(
                        "reservations_batch_fk",
                        (Reservations::Table, Reservations::BatchId),
                        (Batches::Table, Batches::Id),
                    ))
                    .check(Expr::col(Reservations::Returned).lte(Expr::col(Reservations::Quantity)))
                    .to_owned(),
            )
            .await?;
        indexes(
            manager,
            Reservations::Table,
            &[
                (
                    "reservations_order_idx",
                    &[Reservations::SalesOrderId, Reservations::Seq][..],
                ),
                (
                    "reservations_batch_idx",
                    &[Reservations::BatchId, Reservations::Status],
                ),
            ],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(SalesReturns::Table)
                    .col(uuid_pk(SalesReturns::Id))
                    .col(uuid(SalesReturns::SalesOrderId))
                    .col(uuid_null(SalesReturns::ActorId))
                    .col(text_null(SalesReturns::ActorName))
                    .col(ts(SalesReturns::CreatedAt))
                    .foreign_key(&mut restricts(
                        "sales_returns_order_fk",
                        (SalesReturns::Table, SalesReturns::SalesOrderId),
                        (SalesOrders::Table, SalesOrders::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        indexes(
            manager,
            SalesReturns::Table,
            &[(
                "sales_returns_order_idx",
                &[SalesReturns::SalesOrderId, SalesReturns::CreatedAt],
            )],
        )
        .await?;
        manager
            .create_table(
                Table::create()
                    .table(SalesReturnLines::Table)
                    .col(uuid_pk(SalesReturnLines::Id))
                    .col(uuid(SalesReturnLines::ReturnId))
                    .col(int(SalesReturnLines::LineNo))
                    .col(uuid(SalesReturnLines::SalesOrderLineId))
                    .col(uuid(SalesReturnLines::ProductId))
                    .col(positive(SalesReturnLines::Quantity))
                    .col(flag(SalesReturnLines::Restock))
                    .col(text(SalesReturnLines::Reason))
                    .foreign_key(&mut references(
                        "sales_return_lines_return_fk",
                        (SalesReturnLines::Table, SalesReturnLines::ReturnId),
                        (SalesReturns::Table, SalesReturns::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        indexes(
            manager,
            SalesReturnLines::Table,
            &[(
                "sales_return_lines_return_idx",
                &[SalesReturnLines::ReturnId, SalesReturnLines::LineNo],
            )],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Payments::Table)
                    .col(uuid_pk(Payments::Id))
                    .col(uuid(Payments::SalesOrderId))
                    .col(one_of(Payments::Method, PAYMENT_METHODS, false))
                    .col(one_of(Payments::State, PAYMENT_STATES, false))
                    .col(positive(Payments::Amount))
                    .col(text(Payments::Currency))
                    .col(text_null(Payments::Reference))
                    .col(text_null(Payments::TranId).unique_key())
                    .col(uuid_null(Payments::ActorId))
                    .col(text_null(Payments::ActorName))
                    .col(int(Payments::Version))
                    .col(ts(Payments::CreatedAt))
                    .col(ts(Payments::UpdatedAt))
                    .foreign_key(&mut restricts(
                        "payments_order_fk",
                        (Payments::Table, Payments::SalesOrderId),
                        (SalesOrders::Table, SalesOrders::Id),
                    ))
                    .check(
                        Expr::col(Payments::TranId)
                            .is_null()
                            .or(Expr::col(Payments::TranId).ne("")),
                    )
                    .to_owned(),
            )
            .await?;
        indexes(
            manager,
            Payments::Table,
            &[(
                "payments_order_idx",
                &[Payments::SalesOrderId, Payments::CreatedAt],
            )],
        )
        .await?;
        // At most one active payment per (order, method).
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "CREATE UNIQUE INDEX payments_active_key ON payments (sales_order_id, method) \
                 WHERE state IN ({})",
                active_payment_states()
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Payments::Table.into_iden(),
            SalesReturnLines::Table.into_iden(),
            SalesReturns::Table.into_iden(),
            Reservations::Table.into_iden(),
            SalesOrderLines::Table.into_iden(),
            SalesOrders::Table.into_iden(),
            Activities::Table.into_iden(),
            CustomerContacts::Table.into_iden(),
            Customers::Table.into_iden(),
            ReceiptLines::Table.into_iden(),
            Receipts::Table.into_iden(),
            PurchaseOrderLines::Table.into_iden(),
            PurchaseOrders::Table.into_iden(),
            Suppliers::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(OutboundEmails::Table)
                    .drop_column(OutboundEmails::Attachments)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Batches::Table)
                    .drop_column(Batches::Reserved)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
