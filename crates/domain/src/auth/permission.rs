//! The permission catalogue: one fixed code per action, and the built-in roles.
//!
//! Routes require a permission through a marker type from [`perm`] (`Authorized<perm::UsersRead>`),
//! so the requirement is declared once, in the handler's signature. `*.manage_all` permissions
//! bypass ownership: without them a caller sees only the records they own.

use serde::{Deserialize, Serialize};

/// A permission a route can require: implemented by the marker types in [`perm`].
pub trait Grant: Send + Sync + 'static {
    const PERMISSION: Permission;
}

macro_rules! catalogue {
    ($($variant:ident = $code:literal : $description:literal,)+) => {
        /// Every permission Depot knows. Codes are stable: they are stored in role definitions.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Permission {
            $($variant,)+
        }

        impl Permission {
            /// The whole catalogue, in a stable order.
            pub const ALL: &'static [Permission] = &[$(Permission::$variant,)+];

            /// The stable code, e.g. `stock.adjust`.
            pub fn code(self) -> &'static str {
                match self {
                    $(Permission::$variant => $code,)+
                }
            }

            pub fn description(self) -> &'static str {
                match self {
                    $(Permission::$variant => $description,)+
                }
            }

            pub fn parse(code: &str) -> Option<Self> {
                match code {
                    $($code => Some(Permission::$variant),)+
                    _ => None,
                }
            }
        }

        /// Marker types naming one permission each, for use in handler signatures.
        pub mod perm {
            $(
                #[doc = $code]
                pub struct $variant;
                impl super::Grant for $variant {
                    const PERMISSION: super::Permission = super::Permission::$variant;
                }
            )+
        }
    };
}

catalogue! {
    UsersRead = "users.read" : "List and read user accounts",
    UsersManage = "users.manage" : "Create, update, disable, enable and unlock user accounts; assign roles",
    RolesRead = "roles.read" : "List roles and the permission catalogue",
    RolesManage = "roles.manage" : "Create, edit and delete roles",
    AuditRead = "audit.read" : "Read the audit log",
    SessionsManageAll = "sessions.manage_all" : "See and revoke every user's sessions",
    ProductsRead = "products.read" : "Read the catalogue",
    ProductsManage = "products.manage" : "Create and edit products, units and categories",
    WarehousesManage = "warehouses.manage" : "Create and edit warehouses and locations",
    StockRead = "stock.read" : "Read stock levels, batches and the ledger",
    StockAdjust = "stock.adjust" : "Adjust stock (counts, write-offs)",
    StockTransfer = "stock.transfer" : "Transfer stock between warehouses",
    PurchaseOrdersRead = "purchase_orders.read" : "Read purchase orders",
    PurchaseOrdersCreate = "purchase_orders.create" : "Draft and edit purchase orders",
    PurchaseOrdersApprove = "purchase_orders.approve" : "Approve purchase orders",
    PurchaseOrdersReceive = "purchase_orders.receive" : "Receive goods against purchase orders",
    SuppliersManage = "suppliers.manage" : "Create and edit suppliers",
    SalesOrdersRead = "sales_orders.read" : "Read sales orders",
    SalesOrdersCreate = "sales_orders.create" : "Create and edit sales orders",
    SalesOrdersFulfil = "sales_orders.fulfil" : "Fulfil and ship sales orders",
    CustomersRead = "customers.read" : "Read own customers and activities",
    CustomersManage = "customers.manage" : "Create and edit own customers and activities",
    CustomersManageAll = "customers.manage_all" : "See and change every sales rep's customers and activities",
    PaymentsRead = "payments.read" : "Read payments",
    PaymentsCreate = "payments.create" : "Start payments",
    PaymentsRefund = "payments.refund" : "Refund payments",
    ReportsRead = "reports.read" : "Run and read own reports",
    ReportsManageAll = "reports.manage_all" : "See every user's report jobs",
    ReportsPii = "reports.pii" : "See customers' email, phone and address in reports",
    NotificationsManageAll = "notifications.manage_all" : "See every user's notifications",
    WebhooksManage = "webhooks.manage" : "Create, change and delete outbound webhooks; see and redeliver their deliveries",
}

impl Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Permission::parse(&code)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown permission {code:?}")))
    }
}

/// The roles every installation starts with. Their permissions can be edited afterwards, but
/// they cannot be deleted, and `admin` always keeps the whole catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltInRole {
    Admin,
    Manager,
    Clerk,
    Sales,
    Viewer,
}

impl BuiltInRole {
    pub const ALL: [BuiltInRole; 5] = [
        BuiltInRole::Admin,
        BuiltInRole::Manager,
        BuiltInRole::Clerk,
        BuiltInRole::Sales,
        BuiltInRole::Viewer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BuiltInRole::Admin => "admin",
            BuiltInRole::Manager => "manager",
            BuiltInRole::Clerk => "clerk",
            BuiltInRole::Sales => "sales",
            BuiltInRole::Viewer => "viewer",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    pub fn description(self) -> &'static str {
        match self {
            BuiltInRole::Admin => "Everything, including users, roles and the audit log",
            BuiltInRole::Manager => "Runs operations: approves purchases, sees every record",
            BuiltInRole::Clerk => "Warehouse work: receives, adjusts and transfers stock",
            BuiltInRole::Sales => "Own customers, sales orders and payments",
            BuiltInRole::Viewer => "Reads the catalogue, stock and orders",
        }
    }

    /// Admins hold the keys to everything, so by default they must use a second factor.
    pub fn mfa_required(self) -> bool {
        matches!(self, BuiltInRole::Admin)
    }

    /// The permissions the role starts with.
    pub fn default_permissions(self) -> Vec<Permission> {
        use Permission as P;
        match self {
            BuiltInRole::Admin => P::ALL.to_vec(),
            BuiltInRole::Manager => P::ALL
                .iter()
                .copied()
                .filter(|p| !matches!(p, P::RolesManage | P::UsersManage))
                .collect(),
            BuiltInRole::Clerk => vec![
                P::ProductsRead,
                P::StockRead,
                P::StockAdjust,
                P::StockTransfer,
                P::PurchaseOrdersRead,
                P::PurchaseOrdersReceive,
                P::SalesOrdersRead,
                P::SalesOrdersFulfil,
                P::ReportsRead,
            ],
            BuiltInRole::Sales => vec![
                P::ProductsRead,
                P::StockRead,
                P::SalesOrdersRead,
                P::SalesOrdersCreate,
                P::CustomersRead,
                P::CustomersManage,
                P::PaymentsRead,
                P::PaymentsCreate,
                P::ReportsRead,
            ],
            BuiltInRole::Viewer => vec![
                P::ProductsRead,
                P::StockRead,
                P::PurchaseOrdersRead,
                P::SalesOrdersRead,
                P::ReportsRead,
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for p in Permission::ALL {
            assert!(seen.insert(p.code()), "duplicate code {}", p.code());
            assert_eq!(Permission::parse(p.code()), Some(*p));
            assert!(
                p.code().contains('.'),
                "{} is not <area>.<action>",
                p.code()
            );
        }
        assert_eq!(Permission::parse("stock.fly"), None);
    }

    #[test]
    fn only_manage_all_permissions_bypass_ownership() {
        for p in Permission::ALL {
            assert_eq!(
                p.code().ends_with(".manage_all"),
                format!("{p:?}").ends_with("ManageAll")
            );
        }
    }

    #[test]
    fn admin_holds_everything_and_clerks_cannot_manage_users() {
        assert_eq!(
            BuiltInRole::Admin.default_permissions().len(),
            Permission::ALL.len()
        );
        let clerk = BuiltInRole::Clerk.default_permissions();
        assert!(!clerk.contains(&Permission::UsersManage));
        assert!(clerk.contains(&Permission::StockAdjust));
        assert!(
            !BuiltInRole::Manager
                .default_permissions()
                .contains(&Permission::RolesManage)
        );
    }
}
