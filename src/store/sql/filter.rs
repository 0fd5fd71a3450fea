//! The filter language compiled to a condition on `contacts c`. Every value travels as a bound
//! parameter; only our own fixed fragments are ever written into the SQL text. The dialect says
//! how text compares byte by byte (`TEXT_COLLATE`) and how a custom field is read from the JSON
//! of `c.fields`.

use super::*;

/// `(CASE c.number_type WHEN 0 THEN 'mobile' … END)`: a filter compares the type's name, as
/// the API shows it, where the row keeps a code (migration 26).
static NUMBER_TYPE_NAME: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let arms: String = NumberType::ALL
        .iter()
        .map(|kind| format!(" WHEN {} THEN '{}'", kind.code(), kind.as_str()))
        .collect();
    format!("(CASE c.number_type{arms} END)")
});

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut Conn<D>: Executor<'c, Database = D::Db>,
    Args<D>: IntoArguments<D::Db>,
    usize: ColumnIndex<Row<D>>,
    for<'n> &'n str: ColumnIndex<Row<D>>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q [u8]: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> String: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<String>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Vec<u8>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> i64: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i64>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> i32: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> i16: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i16>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> bool: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
{
    pub(crate) fn op_sql(op: CompareOp) -> &'static str {
        match op {
            CompareOp::Eq | CompareOp::Ne => "=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }

    pub(crate) fn column(field: &Field) -> &'static str {
        match field {
            Field::Phone => "c.phone",
            Field::FirstName => "c.first_name",
            Field::LastName => "c.last_name",
            Field::Email => "c.email",
            Field::Gender => "c.gender",
            Field::TimeZone => "c.time_zone",
            Field::Country => "c.country",
            Field::NumberType => NUMBER_TYPE_NAME.as_str(),
            Field::OptedOut => "c.opted_out",
            Field::Custom(_) => "NULL",
        }
    }

    /// The expression as a two-valued condition on `c`: every comparison is wrapped so that
    /// a missing value makes it false (not SQL's unknown), which is what
    /// [`FilterExpr::matches`] means.
    pub(crate) fn push_filter(builder: &mut sqlx::QueryBuilder<D::Db>, expr: &Expr) {
        match expr {
            Expr::And(items) | Expr::Or(items) => {
                let joiner = if matches!(expr, Expr::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                builder.push("(");
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        builder.push(joiner);
                    }
                    Self::push_filter(builder, item);
                }
                builder.push(")");
            }
            Expr::Not(inner) => {
                builder.push("(NOT ");
                Self::push_filter(builder, inner);
                builder.push(")");
            }
            Expr::Compare {
                field,
                op: CompareOp::Ne,
                value,
            } => {
                builder.push("(NOT ");
                Self::push_compare(builder, field, CompareOp::Eq, value);
                builder.push(")");
            }
            Expr::Compare { field, op, value } => Self::push_compare(builder, field, *op, value),
            Expr::In { field, values } => {
                builder.push("(FALSE");
                for value in values {
                    builder.push(" OR ");
                    Self::push_compare(builder, field, CompareOp::Eq, value);
                }
                builder.push(")");
            }
            Expr::IsNull(Field::OptedOut) => {
                builder.push("FALSE");
            }
            Expr::IsNull(Field::Custom(name)) => D::push_custom_is_null(builder, name),
            Expr::IsNull(field) => {
                builder.push(format!("({} IS NULL)", Self::column(field)));
            }
        }
    }

    pub(crate) fn push_compare(
        builder: &mut sqlx::QueryBuilder<D::Db>,
        field: &Field,
        op: CompareOp,
        value: &FilterValue,
    ) {
        match (field, value) {
            (Field::OptedOut, FilterValue::Bool(wanted)) => {
                builder
                    .push(format!("(c.opted_out {} ", Self::op_sql(op)))
                    .push_bind(*wanted)
                    .push(")");
            }
            (Field::Custom(name), value) => {
                D::push_custom_compare(builder, name, Self::op_sql(op), value)
            }
            (field, FilterValue::Text(wanted)) => {
                builder
                    .push(format!(
                        "COALESCE({}{} {} ",
                        Self::column(field),
                        D::TEXT_COLLATE,
                        Self::op_sql(op)
                    ))
                    .push_bind(wanted.clone())
                    .push(", FALSE)");
            }
            // The parser refuses a value of the wrong kind for a built-in field.
            _ => {
                builder.push("FALSE");
            }
        }
    }
}
