//! `stock_count_lines`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "stock_count_lines")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub count_id: Uuid,
    pub line_no: i32,
    pub batch_id: Uuid,
    pub product_id: Uuid,
    pub expected: i64,
    pub counted: i64,
    pub difference: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
