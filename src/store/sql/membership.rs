//! Who is in a group, as SQL: the filter language compiled to a condition on `contacts c`, and
//! a group's effective membership (static members of its tree, plus every smart group's rule)
//! as one predicate. Every value travels as a bound parameter; only our own fixed fragments are
//! ever written into the SQL text. The dialect says how text compares byte by byte
//! (`TEXT_COLLATE`) and how a custom field is read from the JSON of `c.fields`.

use super::*;

/// A group of a resolution tree, with its rule if it is smart.
pub(crate) struct TreeGroup {
    pub(crate) id: String,
    pub(crate) rule: Option<FilterExpr>,
}

/// How a membership test is written. `Probe` looks each candidate contact up (best when
/// a `LIMIT` stops the scan early); `Set` collects the members once and tests against
/// that (best when every member is wanted: counts, resolution, streams).
#[derive(Clone, Copy)]
pub(crate) enum Scan {
    Probe,
    Set,
}

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut Conn<D>: Executor<'c, Database = D::Db>,
    for<'c> &'c Pool<D::Db>: Executor<'c, Database = D::Db>,
    Args<D>: IntoArguments<D::Db>,
    usize: ColumnIndex<Row<D>>,
    for<'n> &'n str: ColumnIndex<Row<D>>,
    for<'q> &'q str: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<&'q str>: Encode<'q, D::Db> + Type<D::Db>,
    for<'q> String: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<String>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> i64: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Option<i64>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> bool: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> f64: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> i32: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> Vec<u8>: Encode<'q, D::Db> + Decode<'q, D::Db> + Type<D::Db>,
    for<'q> &'q [u8]: Encode<'q, D::Db> + Type<D::Db>,
{
    /// The group and, recursively, its active child groups.
    pub(crate) async fn load_tree(
        conn: &mut Conn<D>,
        plan: &PlanId,
        id: &str,
    ) -> StoreResult<Vec<TreeGroup>> {
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            // The groups whose members a group resolves to: itself and, recursively, its
            // active child groups. `UNION` (not `UNION ALL`) also guarantees that the
            // recursion ends even on a graph that somehow held a cycle.
            "WITH RECURSIVE tree(id) AS ( \
                 SELECT CAST($2 AS TEXT) \
                 UNION \
                 SELECT gc.child_id FROM tree \
                 JOIN group_children gc ON gc.plan_id = $1 AND gc.group_id = tree.id \
                 JOIN contact_groups g ON g.plan_id = gc.plan_id AND g.id = gc.child_id \
                                      AND g.status = 'ACTIVE' \
             ) \
             SELECT g.id, g.rule FROM tree \
             JOIN contact_groups g ON g.plan_id = $1 AND g.id = tree.id ORDER BY g.id",
        )
        .bind(plan.as_str())
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        rows.into_iter()
            .map(|(id, rule)| {
                let rule = rule
                    .map(|source| FilterExpr::parse(&source))
                    .transpose()
                    .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
                Ok(TreeGroup { id, rule })
            })
            .collect()
    }

    /// Whether the tree's members can be read off `group_members` alone.
    pub(crate) fn is_static(tree: &[TreeGroup]) -> bool {
        tree.iter().all(|group| group.rule.is_none())
    }

    pub(crate) fn tree_ids(tree: &[TreeGroup]) -> Vec<&str> {
        tree.iter().map(|group| group.id.as_str()).collect()
    }

    /// `c` is an effective member of the tree: a direct member of one of its static groups,
    /// or matched by one of its rules. A lone test is written without `OR`, so that
    /// PostgreSQL can turn it into a join.
    pub(crate) fn push_membership(
        builder: &mut sqlx::QueryBuilder<D::Db>,
        plan: &PlanId,
        tree: &[TreeGroup],
        scan: Scan,
    ) {
        let static_ids: Vec<&str> = tree
            .iter()
            .filter(|group| group.rule.is_none())
            .map(|group| group.id.as_str())
            .collect();
        let rules: Vec<&FilterExpr> = tree
            .iter()
            .filter_map(|group| group.rule.as_ref())
            .collect();
        if static_ids.is_empty() && rules.is_empty() {
            builder.push("FALSE");
            return;
        }
        builder.push("(");
        let mut first = true;
        if !static_ids.is_empty() {
            first = false;
            match scan {
                Scan::Probe => builder.push(
                    "EXISTS (SELECT 1 FROM group_members m \
                     WHERE m.plan_id = c.plan_id AND m.contact_id = c.id AND m.group_id IN (",
                ),
                Scan::Set => builder
                    .push("c.id IN (SELECT m.contact_id FROM group_members m WHERE m.plan_id = ")
                    .push_bind(plan.as_str().to_owned())
                    .push(" AND m.group_id IN ("),
            };
            let mut ids = builder.separated(", ");
            for id in static_ids {
                ids.push_bind(id.to_owned());
            }
            builder.push("))");
        }
        for rule in rules {
            if !first {
                builder.push(" OR ");
            }
            first = false;
            Self::push_filter(builder, rule.root());
        }
        builder.push(")");
    }

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
            Field::Country => "c.country",
            Field::NumberType => "c.number_type",
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
