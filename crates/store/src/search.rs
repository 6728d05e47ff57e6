//! Text search: a user's term becomes a `LIKE` pattern that matches it literally.

use sea_orm::sea_query::LikeExpr;

/// A pattern matching `term` anywhere in a value: `%`, `_` and the escape character itself are
/// escaped, so `q=%` finds a literal percent sign, not every row.
pub fn containing(term: &str) -> LikeExpr {
    let mut pattern = String::with_capacity(term.len() + 2);
    pattern.push('%');
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    LikeExpr::new(pattern).escape('\\')
}
