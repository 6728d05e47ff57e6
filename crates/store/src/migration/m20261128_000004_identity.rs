//! Identity and access: users, roles and their permissions, sessions with their refresh tokens,
//! the access-token denylist, password-reset tokens and MFA recovery codes.

use sea_orm_migration::prelude::*;

use super::parts::{flag, index, references, text, text_null, ts, ts_null, uuid, uuid_pk};
use super::{REFRESH_TOKEN_STATUSES, USER_STATUSES};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Id,
    Email,
    EmailNormalized,
    DisplayName,
    Phone,
    PasswordHash,
    Status,
    FailedLogins,
    LockedUntil,
    TokensNotBefore,
    MfaEnabled,
    MfaSecret,
    MfaPendingSecret,
    MfaLastStep,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Roles {
    Table,
    Id,
    Name,
    Description,
    MfaRequired,
    BuiltIn,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum RolePermissions {
    Table,
    RoleId,
    Permission,
}

#[derive(DeriveIden, Clone, Copy)]
enum UserRoles {
    Table,
    UserId,
    RoleId,
}

#[derive(DeriveIden, Clone, Copy)]
enum Sessions {
    Table,
    Id,
    UserId,
    DeviceId,
    DeviceName,
    UserAgent,
    Ip,
    Mfa,
    CsrfNonce,
    CreatedAt,
    LastUsedAt,
    IdleExpiresAt,
    AbsoluteExpiresAt,
    RevokedAt,
    RevokedReason,
}

#[derive(DeriveIden, Clone, Copy)]
enum RefreshTokens {
    Table,
    TokenHash,
    SessionId,
    Status,
    CreatedAt,
    UsedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum RevokedTokens {
    Table,
    Jti,
    ExpiresAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum PasswordResets {
    Table,
    TokenHash,
    UserId,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum RecoveryCodes {
    Table,
    Id,
    UserId,
    CodeHash,
    UsedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(uuid_pk(Users::Id))
                    .col(text(Users::Email))
                    .col(text(Users::EmailNormalized).unique_key())
                    .col(text(Users::DisplayName))
                    .col(text_null(Users::Phone))
                    .col(text_null(Users::PasswordHash))
                    .col(
                        text(Users::Status)
                            .check(Expr::col(Users::Status).is_in(USER_STATUSES.iter().copied()))
                            .take(),
                    )
                    .col(
                        ColumnDef::new(Users::FailedLogins)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ts_null(Users::LockedUntil))
                    .col(ts_null(Users::TokensNotBefore))
                    .col(flag(Users::MfaEnabled))
                    .col(text_null(Users::MfaSecret))
                    .col(text_null(Users::MfaPendingSecret))
                    .col(ColumnDef::new(Users::MfaLastStep).big_integer().null())
                    .col(ts(Users::CreatedAt))
                    .col(ts(Users::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "users_created_idx",
                Users::Table,
                &[Users::CreatedAt, Users::Id],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Roles::Table)
                    .col(uuid_pk(Roles::Id))
                    .col(text(Roles::Name).unique_key())
                    .col(text(Roles::Description))
                    .col(flag(Roles::MfaRequired))
                    .col(flag(Roles::BuiltIn))
                    .col(ts(Roles::CreatedAt))
                    .col(ts(Roles::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RolePermissions::Table)
                    .col(uuid(RolePermissions::RoleId))
                    .col(text(RolePermissions::Permission))
                    .primary_key(
                        Index::create()
                            .col(RolePermissions::RoleId)
                            .col(RolePermissions::Permission),
                    )
                    .foreign_key(&mut references(
                        "role_permissions_role_fk",
                        (RolePermissions::Table, RolePermissions::RoleId),
                        (Roles::Table, Roles::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UserRoles::Table)
                    .col(uuid(UserRoles::UserId))
                    .col(uuid(UserRoles::RoleId))
                    .primary_key(
                        Index::create()
                            .col(UserRoles::UserId)
                            .col(UserRoles::RoleId),
                    )
                    .foreign_key(&mut references(
                        "user_roles_user_fk",
                        (UserRoles::Table, UserRoles::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .foreign_key(&mut references(
                        "user_roles_role_fk",
                        (UserRoles::Table, UserRoles::RoleId),
                        (Roles::Table, Roles::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "user_roles_role_idx",
                UserRoles::Table,
                &[UserRoles::RoleId],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(uuid_pk(Sessions::Id))
                    .col(uuid(Sessions::UserId))
                    .col(text_null(Sessions::DeviceId))
                    .col(text_null(Sessions::DeviceName))
                    .col(text_null(Sessions::UserAgent))
                    .col(text_null(Sessions::Ip))
                    .col(flag(Sessions::Mfa))
                    .col(text(Sessions::CsrfNonce))
                    .col(ts(Sessions::CreatedAt))
                    .col(ts(Sessions::LastUsedAt))
                    .col(ts(Sessions::IdleExpiresAt))
                    .col(ts(Sessions::AbsoluteExpiresAt))
                    .col(ts_null(Sessions::RevokedAt))
                    .col(text_null(Sessions::RevokedReason))
                    .foreign_key(&mut references(
                        "sessions_user_fk",
                        (Sessions::Table, Sessions::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "sessions_user_idx",
                Sessions::Table,
                &[Sessions::UserId, Sessions::CreatedAt],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(
                        ColumnDef::new(RefreshTokens::TokenHash)
                            .text()
                            .not_null()
                            .primary_key(),
                    )
                    .col(uuid(RefreshTokens::SessionId))
                    .col(
                        text(RefreshTokens::Status)
                            .check(
                                Expr::col(RefreshTokens::Status)
                                    .is_in(REFRESH_TOKEN_STATUSES.iter().copied()),
                            )
                            .take(),
                    )
                    .col(ts(RefreshTokens::CreatedAt))
                    .col(ts_null(RefreshTokens::UsedAt))
                    .foreign_key(&mut references(
                        "refresh_tokens_session_fk",
                        (RefreshTokens::Table, RefreshTokens::SessionId),
                        (Sessions::Table, Sessions::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "refresh_tokens_session_idx",
                RefreshTokens::Table,
                &[RefreshTokens::SessionId],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RevokedTokens::Table)
                    .col(
                        ColumnDef::new(RevokedTokens::Jti)
                            .text()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ts(RevokedTokens::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "revoked_tokens_expiry_idx",
                RevokedTokens::Table,
                &[RevokedTokens::ExpiresAt],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PasswordResets::Table)
                    .col(
                        ColumnDef::new(PasswordResets::TokenHash)
                            .text()
                            .not_null()
                            .primary_key(),
                    )
                    .col(uuid(PasswordResets::UserId))
                    .col(ts(PasswordResets::CreatedAt))
                    .col(ts(PasswordResets::ExpiresAt))
                    .col(ts_null(PasswordResets::UsedAt))
                    .foreign_key(&mut references(
                        "password_resets_user_fk",
                        (PasswordResets::Table, PasswordResets::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "password_resets_user_idx",
                PasswordResets::Table,
                &[PasswordResets::UserId],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RecoveryCodes::Table)
                    .col(uuid_pk(RecoveryCodes::Id))
                    .col(uuid(RecoveryCodes::UserId))
                    .col(text(RecoveryCodes::CodeHash))
                    .col(ts_null(RecoveryCodes::UsedAt))
                    .foreign_key(&mut references(
                        "recovery_codes_user_fk",
                        (RecoveryCodes::Table, RecoveryCodes::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                index(
                    "recovery_codes_user_code_key",
                    RecoveryCodes::Table,
                    &[RecoveryCodes::UserId, RecoveryCodes::CodeHash],
                )
                .unique()
                .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            RecoveryCodes::Table.into_iden(),
            PasswordResets::Table.into_iden(),
            RevokedTokens::Table.into_iden(),
            RefreshTokens::Table.into_iden(),
            Sessions::Table.into_iden(),
            UserRoles::Table.into_iden(),
            RolePermissions::Table.into_iden(),
            Roles::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
