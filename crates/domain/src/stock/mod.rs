//! Stock rules, pure: exact quantities in a product's unit, depletion policies and the planner
//! that decides which batches an issue takes from.

pub mod gs1;
pub mod plan;
pub mod quantity;

pub use plan::{BatchStock, Plan, Shortfall, Take, plan_issue};
pub use quantity::{Quantity, QuantityError, Unit};

crate::string_enum! {
    /// Which batches an issue takes first. A product's own policy beats its category's, which
    /// beats the configured default.
    pub enum DepletionPolicy {
        /// Earliest expiry first; batches without expiry last; then oldest receipt, then id.
        Fefo = "fefo",
        /// Oldest receipt first, then id.
        Fifo = "fifo",
        /// Newest receipt first, then the greatest id.
        Lifo = "lifo",
    }
}

impl DepletionPolicy {
    /// The policy in force: the product's override, else its category's, else the default.
    pub fn resolve(product: Option<Self>, category: Option<Self>, default: Self) -> Self {
        product.or(category).unwrap_or(default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_product_override_beats_its_category_which_beats_the_default() {
        use DepletionPolicy::{Fefo, Fifo, Lifo};
        assert_eq!(DepletionPolicy::resolve(Some(Lifo), Some(Fifo), Fefo), Lifo);
        assert_eq!(DepletionPolicy::resolve(None, Some(Fifo), Fefo), Fifo);
        assert_eq!(DepletionPolicy::resolve(None, None, Fefo), Fefo);
    }
}
