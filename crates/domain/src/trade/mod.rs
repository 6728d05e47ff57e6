//! Purchasing, sales and CRM rules, pure: the order state machines, money totals in integer
//! minor units, the receiving tolerance and the list filters.

pub mod contact;
pub mod crm;
pub mod money;
pub mod payment;
pub mod purchasing;
pub mod sales;

pub use crm::{ActivityFilter, ActivityKind, CustomerFilter, CustomerStatus};
pub use money::{is_currency, line_total, order_total};
pub use payment::{PaymentFilter, PaymentFlag, RefundState};
pub use purchasing::{PoAction, PoState, PurchaseOrderFilter, SupplierFilter, receipt_allowance};
pub use sales::{PaymentMethod, PaymentState, SalesOrderFilter, SoAction, SoState};
