//! The catalogue of error codes: every code a client can receive, with the category that
//! decides its HTTP status and what it means. An error can only be built from a code declared
//! here, and the OpenAPI description lists them all.

/// Broad class of an error; maps one-to-one onto an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCategory {
    /// The request could not be understood (malformed syntax).
    BadRequest,
    /// The request was understood but its content is invalid.
    Validation,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    RateLimited,
    Unavailable,
    Internal,
}

impl ErrorCategory {
    /// The `error` field of the envelope.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Validation => "validation",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }
}

macro_rules! error_codes {
    ( $( $(#[doc = $doc:literal])+ $variant:ident = ($code:literal, $category:ident) ),+ $(,)? ) => {
        /// A stable, machine-readable error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $( $(#[doc = $doc])+ $variant ),+ }

        impl ErrorCode {
            /// Every code, in catalogue order.
            pub const ALL: &'static [ErrorCode] = &[$(Self::$variant),+];

            /// The code as clients see it, e.g. `users.email_taken`.
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $code),+ }
            }

            /// The category, which decides the HTTP status.
            pub const fn category(self) -> ErrorCategory {
                match self { $(Self::$variant => ErrorCategory::$category),+ }
            }

            /// What the code means (for the API documentation).
            pub fn description(self) -> &'static str {
                match self { $(Self::$variant => concat!($($doc),+).trim_ascii()),+ }
            }
        }
    };
}

error_codes! {
    // Requests
    /// The request is malformed.
    RequestBadRequest = ("request.bad_request", BadRequest),
    /// The body is not valid JSON.
    RequestMalformedJson = ("request.malformed_json", BadRequest),
    /// The JSON body does not have the expected shape or types.
    RequestInvalidBody = ("request.invalid_body", Validation),
    /// The body must be `application/json`.
    RequestUnsupportedMediaType = ("request.unsupported_media_type", BadRequest),
    /// The body is larger than the configured limit.
    RequestTooLarge = ("request.too_large", PayloadTooLarge),
    /// The body could not be read.
    RequestUnreadableBody = ("request.unreadable_body", BadRequest),
    /// A query parameter is malformed.
    RequestInvalidQuery = ("request.invalid_query", BadRequest),
    /// The request took longer than the configured timeout.
    RequestTimeout = ("request.timeout", Unavailable),
    /// The request was rejected for another client-side reason.
    RequestRejected = ("request.rejected", BadRequest),
    /// One or more fields are invalid; `details.fields` lists each with its own code.
    ValidationFailed = ("validation.failed", Validation),
    /// A pagination cursor is not one this server issued.
    PaginationInvalidCursor = ("pagination.invalid_cursor", BadRequest),
    /// No such route or resource.
    RouteNotFound = ("route.not_found", NotFound),
    /// The route exists but not with this method (see `Allow`).
    RouteMethodNotAllowed = ("route.method_not_allowed", MethodNotAllowed),
    /// Too many requests; see `Retry-After` and `RateLimit`.
    RateLimited = ("rate_limited", RateLimited),
    /// The service is draining or a dependency is down; try again.
    ServiceUnavailable = ("service.unavailable", Unavailable),
    /// An unexpected failure; the request id finds it in the logs.
    Internal = ("internal", Internal),

    // Authentication and authorisation
    /// No (or a malformed) bearer token was sent.
    AuthRequired = ("auth.required", Unauthorized),
    /// The access token is missing, invalid, expired or revoked.
    AuthInvalidToken = ("auth.invalid_token", Unauthorized),
    /// The email or password is incorrect (also for unknown, locked or disabled accounts).
    AuthInvalidCredentials = ("auth.invalid_credentials", Unauthorized),
    /// The refresh token is invalid or expired; sign in again.
    AuthInvalidRefreshToken = ("auth.invalid_refresh_token", Unauthorized),
    /// A refresh token was presented twice; its whole session has been revoked.
    AuthRefreshTokenReused = ("auth.refresh_token_reused", Unauthorized),
    /// The password-reset link is invalid, used or expired.
    AuthInvalidResetToken = ("auth.invalid_reset_token", BadRequest),
    /// The TOTP or recovery code is not valid.
    AuthInvalidMfaCode = ("auth.invalid_mfa_code", Unauthorized),
    /// A role of this account requires MFA: enrol with the enrolment token in `details`.
    AuthMfaEnrolmentRequired = ("auth.mfa_enrolment_required", Forbidden),
    /// The caller lacks the permission named in `details.permission`.
    AuthForbidden = ("auth.forbidden", Forbidden),
    /// A cookie-authenticated request carried no `Origin` header.
    CsrfOriginMissing = ("csrf.origin_missing", Forbidden),
    /// The request's `Origin` is not an allowed origin.
    CsrfOriginNotAllowed = ("csrf.origin_not_allowed", Forbidden),
    /// A cookie-authenticated request carried no `X-CSRF-Token`.
    CsrfTokenMissing = ("csrf.token_missing", Forbidden),
    /// The CSRF token does not belong to this session.
    CsrfTokenInvalid = ("csrf.token_invalid", Forbidden),
    /// MFA is already on; disable it first.
    MfaAlreadyEnabled = ("mfa.already_enabled", Conflict),
    /// MFA is off.
    MfaNotEnabled = ("mfa.not_enabled", Conflict),
    /// No enrolment is in progress; start with `POST /auth/mfa/totp/enroll`.
    MfaNotEnrolling = ("mfa.not_enrolling", Conflict),
    /// A role of this account requires MFA, so it cannot be turned off.
    MfaRequiredByRole = ("mfa.required_by_role", Conflict),
    /// No such session (or it belongs to someone else).
    SessionsNotFound = ("sessions.not_found", NotFound),

    /// The `Idempotency-Key` header is not one value of 1-255 printable ASCII characters.
    IdempotencyInvalidKey = ("idempotency.invalid_key", BadRequest),
    /// This `Idempotency-Key` was already used for a different request.
    IdempotencyKeyReused = ("idempotency.key_reused", Validation),
    /// A request with this `Idempotency-Key` is still running; retry later (`Retry-After`).
    IdempotencyInProgress = ("idempotency.in_progress", Conflict),
    /// The request with this `Idempotency-Key` took effect, but the server stopped before its
    /// response was stored: it will not run again; read the result instead.
    IdempotencyResponseLost = ("idempotency.response_lost", Conflict),

    // Users and roles
    /// No such user.
    UsersNotFound = ("users.not_found", NotFound),
    /// Another account uses this email (compared case-insensitively).
    UsersEmailTaken = ("users.email_taken", Conflict),
    /// An administrator cannot disable their own account.
    UsersCannotDisableSelf = ("users.cannot_disable_self", Conflict),
    /// The change would leave no active user holding both `users.manage` and `roles.manage`.
    UsersLastAdmin = ("users.last_admin", Conflict),
    /// Granting, revoking or editing access needs every permission involved: `details.permissions`
    /// lists the ones the caller does not hold.
    AuthPermissionNotHeld = ("auth.permission_not_held", Forbidden),
    /// No such role.
    RolesNotFound = ("roles.not_found", NotFound),
    /// A role with this name exists.
    RolesNameTaken = ("roles.name_taken", Conflict),
    /// Built-in roles cannot be renamed or deleted.
    RolesBuiltIn = ("roles.built_in", Conflict),
    /// The admin role always holds every permission.
    RolesAdminIsComplete = ("roles.admin_is_complete", Conflict),

    // Catalog and stock
    /// No such category.
    CategoriesNotFound = ("categories.not_found", NotFound),
    /// A category with this name exists (compared case-insensitively).
    CategoriesNameTaken = ("categories.name_taken", Conflict),
    /// The category still has products; move them first.
    CategoriesInUse = ("categories.in_use", Conflict),
    /// No such product.
    ProductsNotFound = ("products.not_found", NotFound),
    /// Another product has this SKU (compared case-insensitively).
    ProductsSkuTaken = ("products.sku_taken", Conflict),
    /// Another product has this barcode.
    ProductsBarcodeTaken = ("products.barcode_taken", Conflict),
    /// The product is archived: it takes no new stock.
    ProductsArchived = ("products.archived", Conflict),
    /// The product has stock history: its unit cannot change and it cannot be deleted (archive it).
    ProductsInUse = ("products.in_use", Conflict),
    /// No such location.
    LocationsNotFound = ("locations.not_found", NotFound),
    /// Another location has this code (compared case-insensitively).
    LocationsCodeTaken = ("locations.code_taken", Conflict),
    /// The location is inactive: it takes no new stock.
    LocationsInactive = ("locations.inactive", Conflict),
    /// The location has stock history: it cannot be deleted (deactivate it).
    LocationsInUse = ("locations.in_use", Conflict),
    /// Not enough eligible stock: `details.available` says how much there is (and
    /// `details.line` which line of a transfer fell short).
    StockInsufficient = ("stock.insufficient", Conflict),
    /// No such batch (or not where the request says).
    StockBatchNotFound = ("stock.batch_not_found", NotFound),
    /// No such transfer.
    TransfersNotFound = ("transfers.not_found", NotFound),
    /// No such cycle count.
    CountsNotFound = ("counts.not_found", NotFound),
    /// No such alert.
    AlertsNotFound = ("alerts.not_found", NotFound),
    /// The alert is already resolved.
    AlertsResolved = ("alerts.resolved", Conflict),
    /// No product has this barcode, and it is no GS1 element string naming one.
    BarcodesNotFound = ("barcodes.not_found", NotFound),
    /// The code looks like a GS1 element string but is not a valid one.
    BarcodesInvalid = ("barcodes.invalid", Validation),

    // Bulk import
    /// No such import (or not yours).
    ImportsNotFound = ("imports.not_found", NotFound),
    /// Rows of the file have errors (`details.errors`: every one, with row and column);
    /// nothing was written.
    ImportsInvalidRows = ("imports.invalid_rows", Validation),
    /// A queued import's run lost its claim (its lease ran out and another run took it over).
    ImportsTakenOver = ("imports.taken_over", Conflict),

    // Reports
    /// No such report job (or not yours).
    ReportsNotFound = ("reports.not_found", NotFound),
    /// The report outgrew `report_max_bytes` or `report_max_rows`; the job failed and its
    /// partial export was deleted.
    ReportsTooLarge = ("reports.too_large", PayloadTooLarge),
    /// The job has ended (`details.status`); only a queued or running job can be cancelled.
    ReportsNotCancellable = ("reports.not_cancellable", Conflict),
    /// The job has no export to download (`details.status`: not finished, failed, cancelled
    /// or expired).
    ReportsNotReady = ("reports.not_ready", Conflict),
    /// A run lost its claim on the job (cancelled, or its lease ran out and another run took it).
    ReportsTakenOver = ("reports.taken_over", Conflict),
    /// Object storage did not answer or refused the export.
    ReportsStorageUnavailable = ("reports.storage_unavailable", Unavailable),

    // Notifications, webhooks and the realtime socket
    /// A domain event's payload could not be read by the consumer (a contract fault).
    NotificationsUnreadableEvent = ("notifications.unreadable_event", Internal),
    /// No such notification (or not yours).
    NotificationsNotFound = ("notifications.not_found", NotFound),
    /// No such webhook.
    WebhooksNotFound = ("webhooks.not_found", NotFound),
    /// No such delivery of this webhook.
    WebhooksDeliveryNotFound = ("webhooks.delivery_not_found", NotFound),
    /// The delivery is being made this moment; ask again once it settled.
    WebhooksDeliveryInProgress = ("webhooks.delivery_in_progress", Conflict),
    /// The webhook's URL may not be called: a loopback, private or otherwise internal address
    /// (refused in prod), or an address that could not be resolved.
    WebhooksUrlRefused = ("webhooks.url_refused", Validation),
    /// `GET /api/v1/ws` without a WebSocket handshake.
    RealtimeUpgradeRequired = ("realtime.upgrade_required", BadRequest),
    /// The WebSocket ticket is unknown, expired or already used.
    RealtimeInvalidTicket = ("realtime.invalid_ticket", Unauthorized),
    /// The WebSocket was opened from an Origin that is not an allowed one.
    RealtimeOriginRefused = ("realtime.origin_refused", Forbidden),
    /// This instance holds as many sockets as it is configured for.
    RealtimeTooManySockets = ("realtime.too_many_sockets", Unavailable),

    // Backups (the `depot backup` and `depot restore` commands)
    /// The snapshot cannot be restored here: its manifest or checksum is wrong, it comes from
    /// a newer schema than this build knows, or the target database is not empty.
    BackupRefused = ("backup.refused", Conflict),
    /// The backup tool this database needs (`pg_dump`, `pg_restore`) is not installed or failed.
    BackupToolUnavailable = ("backup.tool_unavailable", Unavailable),

    // Purchasing, sales and CRM
    /// No such supplier.
    SuppliersNotFound = ("suppliers.not_found", NotFound),
    /// The supplier is inactive: no new purchase orders.
    SuppliersInactive = ("suppliers.inactive", Conflict),
    /// The supplier has purchase orders: it cannot be deleted (deactivate it).
    SuppliersInUse = ("suppliers.in_use", Conflict),
    /// No such purchase order.
    PurchaseOrderNotFound = ("purchase_order.not_found", NotFound),
    /// The purchase order is not in a state this action starts from: `details.state` says which
    /// it is in.
    PurchaseOrderInvalidState = ("purchase_order.invalid_state", Conflict),
    /// The creator of a purchase order may not approve it.
    PurchaseOrderSelfApproval = ("purchase_order.self_approval", Forbidden),
    /// A receipt would take a line beyond what was ordered plus the tolerance:
    /// `details.lines` says, per line, how much more may still be received.
    PurchaseOrderOverReceipt = ("purchase_order.over_receipt", Validation),
    /// The supplier has no email address to send the purchase order to.
    PurchaseOrderNoSupplierEmail = ("purchase_order.supplier_email_missing", Conflict),
    /// No such customer (or not one of yours).
    CustomersNotFound = ("customers.not_found", NotFound),
    /// The customer has sales orders: it cannot be deleted (make it inactive).
    CustomersInUse = ("customers.in_use", Conflict),
    /// No such contact of this customer.
    ContactsNotFound = ("contacts.not_found", NotFound),
    /// No such activity of this customer.
    ActivitiesNotFound = ("activities.not_found", NotFound),
    /// The new owner is not an active user who can hold customers (`customers.manage`).
    CustomersInvalidOwner = ("customers.invalid_owner", Validation),
    /// No such sales order.
    SalesOrderNotFound = ("sales_order.not_found", NotFound),
    /// The sales order is not in a state this action starts from: `details.state` says which
    /// it is in.
    SalesOrderInvalidState = ("sales_order.invalid_state", Conflict),
    /// A return would take a line beyond what was fulfilled and not yet returned:
    /// `details.lines` says how much may still be returned.
    SalesOrderOverReturn = ("sales_order.over_return", Validation),
    /// The order already has an active payment by this method.
    PaymentsActiveExists = ("payments.active_exists", Conflict),
    /// The payment is more than the order still owes (`details.balance_due`).
    PaymentsExceedsBalance = ("payments.exceeds_balance", Validation),
    /// No such payment (or not the caller's to see).
    PaymentsNotFound = ("payments.not_found", NotFound),
    /// The payment is not in a state this action starts from: `details.state` says which.
    PaymentsInvalidState = ("payments.invalid_state", Conflict),
    /// Gateway payments are not enabled on this deployment (`payments_enabled`).
    PaymentsDisabled = ("payments.disabled", Unavailable),
    /// The payment gateway did not answer, or answered with an error, after the retries.
    PaymentsGatewayUnavailable = ("payments.gateway_unavailable", Unavailable),
    /// The gateway refused the request (its reason in the message).
    PaymentsGatewayRefused = ("payments.gateway_refused", Conflict),
    /// A gateway callback whose signature does not verify, or that lacks signed fields.
    PaymentsInvalidSignature = ("payments.invalid_signature", BadRequest),
    /// The order owes nothing (`details.balance_due` is 0).
    PaymentsNothingDue = ("payments.nothing_due", Conflict),
    /// A refund above what is left of the payment (`details.refundable`).
    PaymentsRefundExceeds = ("payments.refund_exceeds", Validation),

    // Database
    /// A record with the same key already exists.
    DbUniqueViolation = ("db.unique_violation", Conflict),
    /// A referenced record does not exist or is still in use.
    DbReferenceViolation = ("db.reference_violation", Validation),
    /// A value is outside what is allowed.
    DbCheckViolation = ("db.check_violation", Validation),
    /// A required value is missing.
    DbNotNullViolation = ("db.not_null_violation", Validation),
    /// A value cannot be stored (out of range, or not valid text).
    DbInvalidValue = ("db.invalid_value", Validation),
    /// A concurrent change got in the way; try again.
    DbSerializationFailure = ("db.serialization_failure", Unavailable),
    /// A concurrent change got in the way (deadlock); try again.
    DbDeadlock = ("db.deadlock", Unavailable),
    /// The database is unavailable; try again.
    DbUnavailable = ("db.unavailable", Unavailable),
    /// The database did not answer in time.
    DbTimeout = ("db.timeout", Unavailable),
    /// The message broker's topology could not be declared.
    BrokerDeclare = ("broker.declare", Unavailable),

    // Configuration (start-up only)
    /// `DATABASE_URL` is missing or not valid.
    ConfigDatabaseUrl = ("config.database_url", BadRequest),
    /// `REDIS_URL` is not valid.
    ConfigRedisUrl = ("config.redis_url", BadRequest),
    /// `SMTP_URL` is not valid.
    ConfigSmtpUrl = ("config.smtp_url", BadRequest),
    /// `mail_from` is not a valid address.
    ConfigMailFrom = ("config.mail_from", BadRequest),
    /// The JWT signing keys are missing or not valid.
    ConfigJwtSecret = ("config.jwt_secret", BadRequest),
    /// `app_secret` is not configured.
    ConfigAppSecret = ("config.app_secret", BadRequest),

    // Development routes (`debug_routes`)
    /// The payload is not a ping.
    DebugBadPing = ("debug.bad_ping", BadRequest),
    /// The debug consumer fails on purpose.
    DebugFlaky = ("debug.flaky", Unavailable),
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn codes_are_unique_dotted_lowercase_and_described() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} is declared twice");
            assert!(
                text.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_'),
                "{text}"
            );
            assert!(!code.description().is_empty(), "{text} has no description");
        }
        assert_eq!(ErrorCode::UsersEmailTaken.as_str(), "users.email_taken");
        assert_eq!(
            ErrorCode::UsersEmailTaken.category(),
            ErrorCategory::Conflict
        );
        assert_eq!(
            ErrorCode::RolesBuiltIn.description(),
            "Built-in roles cannot be renamed or deleted."
        );
    }
}
