//! Who is in a group, as SQL: the filter language compiled to a condition on `contacts c`, and
//! a group's effective membership (static members of its tree, plus every smart group's rule)
//! as one predicate. Every value travels as a bound parameter; only our own fixed fragments are
//! ever written into the SQL text.
//!
//! The expanding module supplies `TEXT_COLLATE` (how text compares byte by byte) and
//! `push_custom_compare` / `push_custom_is_null` (how a custom field is read from the JSON of
//! `c.fields`).

macro_rules! sql_membership {
    ($db:ty) => {
        /// A group of a resolution tree, with its rule if it is smart.
        struct TreeGroup {
            id: String,
            rule: Option<FilterExpr>,
        }

        /// The group and, recursively, its active child groups.
        async fn load_tree(conn: &mut Conn, plan: &PlanId, id: &str) -> StoreResult<Vec<TreeGroup>> {
            let rows: Vec<(String, Option<String>)> = sqlx::query_as(concat!(
                group_tree_cte!(),
                "SELECT g.id, g.rule FROM tree \
                 JOIN contact_groups g ON g.plan_id = $1 AND g.id = tree.id ORDER BY g.id"
            ))
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
        fn is_static(tree: &[TreeGroup]) -> bool {
            tree.iter().all(|group| group.rule.is_none())
        }

        fn tree_ids(tree: &[TreeGroup]) -> Vec<&str> {
            tree.iter().map(|group| group.id.as_str()).collect()
        }

        /// How a membership test is written. `Probe` looks each candidate contact up (best when
        /// a `LIMIT` stops the scan early); `Set` collects the members once and tests against
        /// that (best when every member is wanted: counts, resolution, streams).
        #[derive(Clone, Copy)]
        enum Scan {
            Probe,
            Set,
        }

        /// `c` is an effective member of the tree: a direct member of one of its static groups,
        /// or matched by one of its rules. A lone test is written without `OR`, so that
        /// PostgreSQL can turn it into a join.
        fn push_membership(
            builder: &mut sqlx::QueryBuilder<$db>,
            plan: &PlanId,
            tree: &[TreeGroup],
            scan: Scan,
        ) {
            let static_ids: Vec<&str> = tree
                .iter()
                .filter(|group| group.rule.is_none())
                .map(|group| group.id.as_str())
                .collect();
            let rules: Vec<&FilterExpr> = tree.iter().filter_map(|group| group.rule.as_ref()).collect();
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
                push_filter(builder, rule.root());
            }
            builder.push(")");
        }

        fn op_sql(op: CompareOp) -> &'static str {
            match op {
                CompareOp::Eq | CompareOp::Ne => "=",
                CompareOp::Lt => "<",
                CompareOp::Le => "<=",
                CompareOp::Gt => ">",
                CompareOp::Ge => ">=",
            }
        }

        fn column(field: &Field) -> &'static str {
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
        fn push_filter(builder: &mut sqlx::QueryBuilder<$db>, expr: &Expr) {
            match expr {
                Expr::And(items) | Expr::Or(items) => {
                    let joiner = if matches!(expr, Expr::And(_)) { " AND " } else { " OR " };
                    builder.push("(");
                    for (index, item) in items.iter().enumerate() {
                        if index > 0 {
                            builder.push(joiner);
                        }
                        push_filter(builder, item);
                    }
                    builder.push(")");
                }
                Expr::Not(inner) => {
                    builder.push("(NOT ");
                    push_filter(builder, inner);
                    builder.push(")");
                }
                Expr::Compare {
                    field,
                    op: CompareOp::Ne,
                    value,
                } => {
                    builder.push("(NOT ");
                    push_compare(builder, field, CompareOp::Eq, value);
                    builder.push(")");
                }
                Expr::Compare { field, op, value } => push_compare(builder, field, *op, value),
                Expr::In { field, values } => {
                    builder.push("(FALSE");
                    for value in values {
                        builder.push(" OR ");
                        push_compare(builder, field, CompareOp::Eq, value);
                    }
                    builder.push(")");
                }
                Expr::IsNull(Field::OptedOut) => {
                    builder.push("FALSE");
                }
                Expr::IsNull(Field::Custom(name)) => push_custom_is_null(builder, name),
                Expr::IsNull(field) => {
                    builder.push(format!("({} IS NULL)", column(field)));
                }
            }
        }

        fn push_compare(
            builder: &mut sqlx::QueryBuilder<$db>,
            field: &Field,
            op: CompareOp,
            value: &FilterValue,
        ) {
            match (field, value) {
                (Field::OptedOut, FilterValue::Bool(wanted)) => {
                    builder
                        .push(format!("(c.opted_out {} ", op_sql(op)))
                        .push_bind(*wanted)
                        .push(")");
                }
                (Field::Custom(name), value) => push_custom_compare(builder, name, op_sql(op), value),
                (field, FilterValue::Text(wanted)) => {
                    builder
                        .push(format!(
                            "COALESCE({}{TEXT_COLLATE} {} ",
                            column(field),
                            op_sql(op)
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
    };
}
