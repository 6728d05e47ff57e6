//! Notifications (one row per user, channel and causing event), the users' preferences,
//! outbound webhooks with their delivery log, and the single-use tickets that open a
//! WebSocket.

use sea_orm_migration::prelude::*;

use super::parts::{
    flag, index, one_of, references, text, text_null, ts, ts_null, uuid, uuid_null, uuid_pk,
};
use super::{CHANNELS, DELIVERY_STATUSES, NOTIFICATION_STATUSES, NOTIFICATION_TYPES};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden, Clone, Copy)]
enum Notifications {
    Table,
    Id,
    UserId,
    EventType,
    Channel,
    Title,
    Body,
    Payload,
    Status,
    Attempts,
    LastError,
    NextAttemptAt,
    EmailId,
    EventId,
    CreatedAt,
    SentAt,
    ReadAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum NotificationPreferences {
    Table,
    UserId,
    EventType,
    Channel,
    Enabled,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Webhooks {
    Table,
    Id,
    Url,
    EventTypes,
    Active,
    Secret,
    Description,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum WebhookDeliveries {
    Table,
    Id,
    WebhookId,
    EventId,
    EventType,
    Body,
    Status,
    Attempts,
    NextAttemptAt,
    LockedUntil,
    LastStatusCode,
    LastError,
    WindowStartedAt,
    CreatedAt,
    DeliveredAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum WsTickets {
    Table,
    Id,
    TokenHash,
    UserId,
    SessionId,
    Origin,
    ExpiresAt,
    UsedAt,
    CreatedAt,
}

fn attempts(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).integer().not_null().default(0).take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Notifications::Table)
                    .col(uuid_pk(Notifications::Id))
                    .col(uuid(Notifications::UserId))
                    .col(one_of(Notifications::EventType, NOTIFICATION_TYPES, false))
                    .col(one_of(Notifications::Channel, CHANNELS, false))
                    .col(text(Notifications::Title))
                    .col(text(Notifications::Body))
                    .col(text(Notifications::Payload))
                    .col(one_of(Notifications::Status, NOTIFICATION_STATUSES, false))
                    .col(attempts(Notifications::Attempts))
                    .col(text_null(Notifications::LastError))
                    .col(ts_null(Notifications::NextAttemptAt))
                    .col(uuid_null(Notifications::EmailId))
                    .col(uuid(Notifications::EventId))
                    .col(ts(Notifications::CreatedAt))
                    .col(ts_null(Notifications::SentAt))
                    .col(ts_null(Notifications::ReadAt))
                    .foreign_key(&mut references(
                        "notifications_user_fk",
                        (Notifications::Table, Notifications::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        // One notification per (event, user, channel), whatever redelivers the event.
        manager
            .create_index(
                index(
                    "notifications_event_key",
                    Notifications::Table,
                    &[
                        Notifications::EventId,
                        Notifications::UserId,
                        Notifications::Channel,
                    ],
                )
                .unique()
                .take(),
            )
            .await?;
        for (name, cols) in [
            (
                "notifications_user_idx",
                &[
                    Notifications::UserId,
                    Notifications::CreatedAt,
                    Notifications::Id,
                ][..],
            ),
            (
                "notifications_status_idx",
                &[
                    Notifications::Status,
                    Notifications::CreatedAt,
                    Notifications::Id,
                ][..],
            ),
            ("notifications_email_idx", &[Notifications::EmailId][..]),
        ] {
            manager
                .create_index(index(name, Notifications::Table, cols))
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(NotificationPreferences::Table)
                    .col(uuid(NotificationPreferences::UserId))
                    .col(one_of(
                        NotificationPreferences::EventType,
                        NOTIFICATION_TYPES,
                        false,
                    ))
                    .col(one_of(NotificationPreferences::Channel, CHANNELS, false))
                    .col(flag(NotificationPreferences::Enabled))
                    .col(ts(NotificationPreferences::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(NotificationPreferences::UserId)
                            .col(NotificationPreferences::EventType)
                            .col(NotificationPreferences::Channel),
                    )
                    .foreign_key(&mut references(
                        "notification_preferences_user_fk",
                        (
                            NotificationPreferences::Table,
                            NotificationPreferences::UserId,
                        ),
                        (Users::Table, Users::Id),
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Webhooks::Table)
                    .col(uuid_pk(Webhooks::Id))
                    .col(text(Webhooks::Url))
                    .col(text(Webhooks::EventTypes))
                    .col(flag(Webhooks::Active))
                    .col(text(Webhooks::Secret))
                    .col(text_null(Webhooks::Description))
                    .col(uuid_null(Webhooks::CreatedBy))
                    .col(ts(Webhooks::CreatedAt))
                    .col(ts(Webhooks::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "webhooks_created_idx",
                Webhooks::Table,
                &[Webhooks::CreatedAt, Webhooks::Id],
            ))
            .await?;
        manager
            .create_index(index(
                "webhooks_active_idx",
                Webhooks::Table,
                &[Webhooks::Active],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(uuid_pk(WebhookDeliveries::Id))
                    .col(uuid(WebhookDeliveries::WebhookId))
                    .col(uuid(WebhookDeliveries::EventId))
                    .col(text(WebhookDeliveries::EventType))
                    .col(text(WebhookDeliveries::Body))
                    .col(one_of(WebhookDeliveries::Status, DELIVERY_STATUSES, false))
                    .col(attempts(WebhookDeliveries::Attempts))
                    .col(ts(WebhookDeliveries::NextAttemptAt))
                    .col(ts_null(WebhookDeliveries::LockedUntil))
                    .col(
                        ColumnDef::new(WebhookDeliveries::LastStatusCode)
                            .integer()
                            .null()
                            .take(),
                    )
                    .col(text_null(WebhookDeliveries::LastError))
                    .col(ts(WebhookDeliveries::WindowStartedAt))
                    .col(ts(WebhookDeliveries::CreatedAt))
                    .col(ts_null(WebhookDeliveries::DeliveredAt))
                    .col(ts(WebhookDeliveries::UpdatedAt))
                    .foreign_key(&mut references(
                        "webhook_deliveries_webhook_fk",
                        (WebhookDeliveries::Table, WebhookDeliveries::WebhookId),
                        (Webhooks::Table, Webhooks::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "webhook_deliveries_event_key",
                    WebhookDeliveries::Table,
                    &[WebhookDeliveries::WebhookId, WebhookDeliveries::EventId],
                )
                .unique()
                .take(),
            )
            .await?;
        manager
            .create_index(index(
                "webhook_deliveries_list_idx",
                WebhookDeliveries::Table,
                &[
                    WebhookDeliveries::WebhookId,
                    WebhookDeliveries::CreatedAt,
                    WebhookDeliveries::Id,
                ],
            ))
            .await?;
        manager
            .create_index(index(
                "webhook_deliveries_due_idx",
                WebhookDeliveries::Table,
                &[WebhookDeliveries::Status, WebhookDeliveries::NextAttemptAt],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WsTickets::Table)
                    .col(uuid_pk(WsTickets::Id))
                    .col(text(WsTickets::TokenHash).unique_key())
                    .col(uuid(WsTickets::UserId))
                    .col(uuid(WsTickets::SessionId))
                    .col(text_null(WsTickets::Origin))
                    .col(ts(WsTickets::ExpiresAt))
                    .col(ts_null(WsTickets::UsedAt))
                    .col(ts(WsTickets::CreatedAt))
                    .foreign_key(&mut references(
                        "ws_tickets_user_fk",
                        (WsTickets::Table, WsTickets::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ws_tickets_user_idx",
                WsTickets::Table,
                &[WsTickets::UserId],
            ))
            .await?;
        manager
            .create_index(index(
                "ws_tickets_expires_idx",
                WsTickets::Table,
                &[WsTickets::ExpiresAt],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            WsTickets::Table.into_iden(),
            WebhookDeliveries::Table.into_iden(),
            Webhooks::Table.into_iden(),
            NotificationPreferences::Table.into_iden(),
            Notifications::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
