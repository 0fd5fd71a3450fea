//! The filter language of smart groups and contact search:
//!
//! ```text
//! country = "DE" and fields.plan in ("gold", "silver") and not opted_out
//! ```
//!
//! Parsed into a typed tree ([`FilterExpr`]); the storage layer compiles the tree to SQL with
//! bound parameters only, and [`FilterExpr::matches`] evaluates it in memory with the same
//! meaning (used to test the SQL against).
//!
//! Grammar (keywords are case-insensitive):
//!
//! ```text
//! expr       := and_expr ("or" and_expr)*
//! and_expr   := unary ("and" unary)*
//! unary      := "not" unary | primary
//! primary    := "(" expr ")" | comparison
//! comparison := field op value
//!             | field ["not"] "in" "(" value ("," value)* ")"
//!             | field "is" ["not"] "null"
//!             | field                        -- a boolean field alone: `opted_out`
//! op         := "=" | "!=" | "<" | "<=" | ">" | ">="
//! value      := "string" | number | true | false
//! field      := phone | first_name | last_name | email | gender | time_zone | country
//!             | number_type | opted_out | fields.NAME
//! ```
//!
//! Meaning: a comparison with a missing value (an unset name, a custom field that is absent or
//! of another JSON type) is false, and `a != v` is `not (a = v)`. Text compares byte by byte,
//! case-sensitively; a `gender` value is first put in the spelling genders are stored in (see
//! [`Gender::canonical`]), so `gender = "F"` finds `female`.

use std::cmp::Ordering;
use std::fmt;

use super::contact::Gender;
use super::text::refuse_nul;

/// A parsed, valid filter expression.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterExpr {
    root: Expr,
    source: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Compare {
        field: Field,
        op: CompareOp,
        value: Value,
    },
    In {
        field: Field,
        values: Vec<Value>,
    },
    IsNull(Field),
}

/// A contact attribute the language can test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Phone,
    FirstName,
    LastName,
    Email,
    Gender,
    TimeZone,
    Country,
    NumberType,
    OptedOut,
    /// `fields.NAME`: a custom field.
    Custom(String),
}

impl Field {
    fn parse(name: &str) -> Option<Self> {
        if let Some(custom) = name.strip_prefix("fields.") {
            let valid = !custom.is_empty()
                && custom.len() <= MAX_FIELD_NAME
                && custom
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
            return valid.then(|| Field::Custom(custom.to_owned()));
        }
        Some(match name {
            "phone" => Field::Phone,
            "first_name" => Field::FirstName,
            "last_name" => Field::LastName,
            "email" => Field::Email,
            "gender" => Field::Gender,
            "time_zone" => Field::TimeZone,
            "country" => Field::Country,
            "number_type" => Field::NumberType,
            "opted_out" => Field::OptedOut,
            _ => return None,
        })
    }

    /// The kind of value a built-in field holds; custom fields hold any.
    fn kind(&self) -> Option<ValueKind> {
        match self {
            Field::OptedOut => Some(ValueKind::Bool),
            Field::Custom(_) => None,
            _ => Some(ValueKind::Text),
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Phone => f.write_str("phone"),
            Field::FirstName => f.write_str("first_name"),
            Field::LastName => f.write_str("last_name"),
            Field::Email => f.write_str("email"),
            Field::Gender => f.write_str("gender"),
            Field::TimeZone => f.write_str("time_zone"),
            Field::Country => f.write_str("country"),
            Field::NumberType => f.write_str("number_type"),
            Field::OptedOut => f.write_str("opted_out"),
            Field::Custom(name) => write!(f, "fields.{name}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            CompareOp::Eq => ordering == Ordering::Equal,
            CompareOp::Ne => ordering != Ordering::Equal,
            CompareOp::Lt => ordering == Ordering::Less,
            CompareOp::Le => ordering != Ordering::Greater,
            CompareOp::Gt => ordering == Ordering::Greater,
            CompareOp::Ge => ordering != Ordering::Less,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Number(f64),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueKind {
    Text,
    Number,
    Bool,
}

impl Value {
    fn kind(&self) -> ValueKind {
        match self {
            Value::Text(_) => ValueKind::Text,
            Value::Number(_) => ValueKind::Number,
            Value::Bool(_) => ValueKind::Bool,
        }
    }
}

/// Why an expression was refused, with the character position (from 0) where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at character {position}: {message}")]
pub struct FilterError {
    pub position: usize,
    pub message: String,
}

/// Bounds that keep the compiled SQL, and the work it does per contact, small.
pub const MAX_SOURCE_CHARS: usize = 4096;
pub const MAX_DEPTH: usize = 32;
pub const MAX_CONDITIONS: usize = 64;
pub const MAX_IN_VALUES: usize = 256;
const MAX_FIELD_NAME: usize = 64;

/// The contact attributes an expression is evaluated against in memory.
pub struct ContactAttributes<'a> {
    pub phone: &'a str,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub gender: Option<&'a str>,
    pub time_zone: Option<&'a str>,
    pub country: Option<&'a str>,
    pub number_type: Option<&'a str>,
    pub opted_out: bool,
    pub fields: &'a serde_json::Map<String, serde_json::Value>,
}

impl FilterExpr {
    pub fn parse(source: &str) -> Result<Self, FilterError> {
        if source.chars().count() > MAX_SOURCE_CHARS {
            return Err(FilterError {
                position: MAX_SOURCE_CHARS,
                message: format!("is longer than {MAX_SOURCE_CHARS} characters"),
            });
        }
        refuse_nul(source).map_err(|error| FilterError {
            position: source.chars().take_while(|c| *c != '\0').count(),
            message: error.to_string(),
        })?;
        let tokens = tokenize(source)?;
        let mut parser = Parser {
            tokens,
            at: 0,
            depth: 0,
            conditions: 0,
            end: source.chars().count(),
        };
        let root = parser.expr()?;
        if let Some(token) = parser.tokens.get(parser.at) {
            return Err(FilterError {
                position: token.position,
                message: format!("unexpected {}", token.kind),
            });
        }
        Ok(FilterExpr {
            root,
            source: source.trim().to_owned(),
        })
    }

    pub fn root(&self) -> &Expr {
        &self.root
    }

    /// The expression as the client wrote it (trimmed).
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn matches(&self, contact: &ContactAttributes<'_>) -> bool {
        evaluate(&self.root, contact)
    }
}

fn evaluate(expr: &Expr, contact: &ContactAttributes<'_>) -> bool {
    match expr {
        Expr::And(items) => items.iter().all(|item| evaluate(item, contact)),
        Expr::Or(items) => items.iter().any(|item| evaluate(item, contact)),
        Expr::Not(inner) => !evaluate(inner, contact),
        Expr::Compare {
            field,
            op: CompareOp::Ne,
            value,
        } => !compare(field, CompareOp::Eq, value, contact),
        Expr::Compare { field, op, value } => compare(field, *op, value, contact),
        Expr::In { field, values } => values
            .iter()
            .any(|value| compare(field, CompareOp::Eq, value, contact)),
        Expr::IsNull(field) => match field {
            Field::OptedOut => false,
            Field::Custom(name) => contact.fields.get(name).is_none_or(|v| v.is_null()),
            other => text_of(other, contact).is_none(),
        },
    }
}

fn text_of<'a>(field: &Field, contact: &ContactAttributes<'a>) -> Option<&'a str> {
    match field {
        Field::Phone => Some(contact.phone),
        Field::FirstName => contact.first_name,
        Field::LastName => contact.last_name,
        Field::Email => contact.email,
        Field::Gender => contact.gender,
        Field::TimeZone => contact.time_zone,
        Field::Country => contact.country,
        Field::NumberType => contact.number_type,
        Field::OptedOut | Field::Custom(_) => None,
    }
}

fn compare(field: &Field, op: CompareOp, value: &Value, contact: &ContactAttributes<'_>) -> bool {
    let ordering = match (field, value) {
        (Field::OptedOut, Value::Bool(wanted)) => Some(contact.opted_out.cmp(wanted)),
        (Field::Custom(name), value) => match (contact.fields.get(name), value) {
            (Some(serde_json::Value::String(have)), Value::Text(wanted)) => {
                Some(have.as_str().cmp(wanted.as_str()))
            }
            (Some(serde_json::Value::Number(have)), Value::Number(wanted)) => {
                have.as_f64().and_then(|have| have.partial_cmp(wanted))
            }
            (Some(serde_json::Value::Bool(have)), Value::Bool(wanted)) => Some(have.cmp(wanted)),
            _ => None,
        },
        (field, Value::Text(wanted)) => {
            text_of(field, contact).map(|have| have.cmp(wanted.as_str()))
        }
        _ => None,
    };
    ordering.is_some_and(|ordering| op.holds(ordering))
}

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
    Ident(String),
    Text(String),
    Number(f64),
    Op(CompareOp),
    Open,
    Close,
    Comma,
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenKind::Ident(word) => write!(f, "`{word}`"),
            TokenKind::Text(_) => f.write_str("a string"),
            TokenKind::Number(_) => f.write_str("a number"),
            TokenKind::Op(_) => f.write_str("an operator"),
            TokenKind::Open => f.write_str("`(`"),
            TokenKind::Close => f.write_str("`)`"),
            TokenKind::Comma => f.write_str("`,`"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: TokenKind,
    position: usize,
}

fn tokenize(source: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let error = |position: usize, message: &str| FilterError {
        position,
        message: message.to_owned(),
    };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let kind = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => {
                i += 1;
                TokenKind::Open
            }
            ')' => {
                i += 1;
                TokenKind::Close
            }
            ',' => {
                i += 1;
                TokenKind::Comma
            }
            '=' => {
                i += if chars.get(i + 1) == Some(&'=') { 2 } else { 1 };
                TokenKind::Op(CompareOp::Eq)
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                i += 2;
                TokenKind::Op(CompareOp::Ne)
            }
            '<' if chars.get(i + 1) == Some(&'>') => {
                i += 2;
                TokenKind::Op(CompareOp::Ne)
            }
            '<' | '>' => {
                let or_equal = chars.get(i + 1) == Some(&'=');
                i += if or_equal { 2 } else { 1 };
                TokenKind::Op(match (c, or_equal) {
                    ('<', false) => CompareOp::Lt,
                    ('<', true) => CompareOp::Le,
                    ('>', false) => CompareOp::Gt,
                    _ => CompareOp::Ge,
                })
            }
            '"' | '\'' => {
                let quote = c;
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(error(start, "unterminated string")),
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some(escaped @ ('\\' | '"' | '\'')) => text.push(*escaped),
                                _ => {
                                    return Err(error(i, "only \\\\, \\\" and \\' escapes exist"));
                                }
                            }
                            i += 2;
                        }
                        Some(ch) if *ch == quote => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            text.push(*ch);
                            i += 1;
                        }
                    }
                }
                TokenKind::Text(text)
            }
            c if c.is_ascii_digit() || c == '-' || c == '.' => {
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '+')
                {
                    i += 1;
                }
                let literal: String = chars[start..i].iter().collect();
                match literal.parse::<f64>() {
                    Ok(number) if number.is_finite() => TokenKind::Number(number),
                    _ => return Err(error(start, &format!("`{literal}` is not a number"))),
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                i += 1;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.' | '-'))
                {
                    i += 1;
                }
                TokenKind::Ident(chars[start..i].iter().collect())
            }
            other => return Err(error(start, &format!("unexpected character `{other}`"))),
        };
        tokens.push(Token {
            kind,
            position: start,
        });
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
    conditions: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&TokenKind> {
        self.tokens.get(self.at).map(|t| &t.kind)
    }

    fn position(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |t| t.position)
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, FilterError> {
        Err(FilterError {
            position: self.position(),
            message: message.into(),
        })
    }

    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(TokenKind::Ident(w)) if w.eq_ignore_ascii_case(word)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, kind: &TokenKind, what: &str) -> Result<(), FilterError> {
        if self.peek() == Some(kind) {
            self.at += 1;
            Ok(())
        } else {
            self.error(format!("expected {what}"))
        }
    }

    fn nest(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.error(format!("nests deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr, FilterError> {
        self.nest()?;
        let mut items = vec![self.and_expr()?];
        while self.keyword("or") {
            items.push(self.and_expr()?);
        }
        self.depth -= 1;
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and_expr(&mut self) -> Result<Expr, FilterError> {
        let mut items = vec![self.unary()?];
        while self.keyword("and") {
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        if self.keyword("not") {
            self.nest()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        if self.peek() == Some(&TokenKind::Open) {
            self.at += 1;
            let inner = self.expr()?;
            self.expect(&TokenKind::Close, "`)`")?;
            return Ok(inner);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, FilterError> {
        self.conditions += 1;
        if self.conditions > MAX_CONDITIONS {
            return self.error(format!("has more than {MAX_CONDITIONS} conditions"));
        }
        let position = self.position();
        let name = match self.peek() {
            Some(TokenKind::Ident(name)) => name.clone(),
            Some(other) => return self.error(format!("expected a field name, found {other}")),
            None => return self.error("expected a field name"),
        };
        let Some(field) = Field::parse(&name) else {
            return self.error(format!(
                "unknown field `{name}`; fields are phone, first_name, last_name, email, gender, \
                 time_zone, country, number_type, opted_out and fields.NAME"
            ));
        };
        self.at += 1;
        let negated_in = self.keyword("not");
        if negated_in || self.keyword("in") {
            if negated_in && !self.keyword("in") {
                return self.error("expected `in` after `not`");
            }
            self.expect(&TokenKind::Open, "`(` after `in`")?;
            let mut values = vec![self.value(&field)?];
            while self.peek() == Some(&TokenKind::Comma) {
                self.at += 1;
                values.push(self.value(&field)?);
                if values.len() > MAX_IN_VALUES {
                    return self.error(format!("lists more than {MAX_IN_VALUES} values"));
                }
            }
            self.expect(&TokenKind::Close, "`)` or `,`")?;
            let expr = Expr::In { field, values };
            return Ok(if negated_in {
                Expr::Not(Box::new(expr))
            } else {
                expr
            });
        }
        if self.keyword("is") {
            let negated = self.keyword("not");
            if !self.keyword("null") {
                return self.error("expected `null` after `is`");
            }
            let expr = Expr::IsNull(field);
            return Ok(if negated {
                Expr::Not(Box::new(expr))
            } else {
                expr
            });
        }
        match self.peek() {
            Some(TokenKind::Op(op)) => {
                let op = *op;
                self.at += 1;
                let value = self.value(&field)?;
                if field.kind() == Some(ValueKind::Bool)
                    && !matches!(op, CompareOp::Eq | CompareOp::Ne)
                {
                    return Err(FilterError {
                        position,
                        message: format!("`{field}` can only be compared with = or !="),
                    });
                }
                Ok(Expr::Compare { field, op, value })
            }
            _ if field == Field::OptedOut => Ok(Expr::Compare {
                field,
                op: CompareOp::Eq,
                value: Value::Bool(true),
            }),
            _ => self.error(format!("expected an operator after `{field}`")),
        }
    }

    fn value(&mut self, field: &Field) -> Result<Value, FilterError> {
        let value = match self.peek() {
            Some(TokenKind::Text(text)) if *field == Field::Gender => {
                Value::Text(Gender::canonical(text))
            }
            Some(TokenKind::Text(text)) => Value::Text(text.clone()),
            Some(TokenKind::Number(number)) => Value::Number(*number),
            Some(TokenKind::Ident(word)) if word.eq_ignore_ascii_case("true") => Value::Bool(true),
            Some(TokenKind::Ident(word)) if word.eq_ignore_ascii_case("false") => {
                Value::Bool(false)
            }
            _ => return self.error("expected a value: a \"string\", a number, true or false"),
        };
        if let Some(kind) = field.kind().filter(|kind| *kind != value.kind()) {
            let wanted = match kind {
                ValueKind::Text => "a \"string\"",
                ValueKind::Number => "a number",
                ValueKind::Bool => "true or false",
            };
            return self.error(format!("`{field}` is compared with {wanted}"));
        }
        self.at += 1;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn parse(source: &str) -> Expr {
        FilterExpr::parse(source)
            .unwrap_or_else(|e| panic!("{source}: {e}"))
            .root
    }

    fn text(s: &str) -> Value {
        Value::Text(s.to_owned())
    }

    #[test]
    fn parses_the_documented_example() {
        assert_eq!(
            parse(r#"country = "DE" and fields.plan in ("gold","silver") and not opted_out"#),
            Expr::And(vec![
                Expr::Compare {
                    field: Field::Country,
                    op: CompareOp::Eq,
                    value: text("DE")
                },
                Expr::In {
                    field: Field::Custom("plan".into()),
                    values: vec![text("gold"), text("silver")]
                },
                Expr::Not(Box::new(Expr::Compare {
                    field: Field::OptedOut,
                    op: CompareOp::Eq,
                    value: Value::Bool(true)
                })),
            ])
        );
    }

    #[test]
    fn and_binds_tighter_than_or_and_parentheses_override() {
        // A gender is compared in its stored spelling.
        let a = || Expr::Compare {
            field: Field::Gender,
            op: CompareOp::Eq,
            value: text("female"),
        };
        let b = || Expr::Compare {
            field: Field::Country,
            op: CompareOp::Ne,
            value: text("US"),
        };
        let c = || Expr::Compare {
            field: Field::Custom("age".into()),
            op: CompareOp::Ge,
            value: Value::Number(18.0),
        };
        assert_eq!(
            parse(r#"gender = "f" or country != "US" and fields.age >= 18"#),
            Expr::Or(vec![a(), Expr::And(vec![b(), c()])])
        );
        assert_eq!(
            parse(r#"(gender = 'f' OR country <> "US") AND fields.age >= 18"#),
            Expr::And(vec![Expr::Or(vec![a(), b()]), c()])
        );
    }

    #[test]
    fn errors_say_where_and_why() {
        for (source, position, words) in [
            ("country = ", 10, "expected a value"),
            ("colour = \"red\"", 0, "unknown field"),
            ("country = 5", 10, "compared with a \"string\""),
            ("opted_out = \"yes\"", 12, "true or false"),
            ("opted_out > true", 0, "only be compared"),
            ("(country = \"DE\"", 15, "expected `)`"),
            ("country = \"DE", 10, "unterminated"),
            ("country = \"DE\" extra", 15, "unexpected"),
            ("country ~ \"DE\"", 8, "unexpected character"),
            ("phone not \"x\"", 10, "expected `in`"),
            ("fields. = 1", 0, "unknown field"),
            ("first_name = \"a\0\"", 15, "U+0000"),
            ("phone \0", 6, "U+0000"),
        ] {
            let error = FilterExpr::parse(source).expect_err(source);
            assert_eq!(error.position, position, "{source}: {error}");
            assert!(error.message.contains(words), "{source}: {error}");
        }
    }

    #[test]
    fn limits_are_enforced() {
        let deep = format!("{}opted_out{}", "(".repeat(40), ")".repeat(40));
        assert!(
            FilterExpr::parse(&deep)
                .unwrap_err()
                .message
                .contains("deeper")
        );
        let many = vec!["opted_out"; MAX_CONDITIONS + 1].join(" or ");
        assert!(
            FilterExpr::parse(&many)
                .unwrap_err()
                .message
                .contains("conditions")
        );
        let at_limit = vec!["opted_out"; MAX_CONDITIONS].join(" or ");
        assert!(FilterExpr::parse(&at_limit).is_ok());
        let long = format!("phone = \"{}\"", "1".repeat(MAX_SOURCE_CHARS));
        assert!(FilterExpr::parse(&long).is_err());
    }

    #[test]
    fn evaluates_missing_values_as_false() {
        let fields = json!({"plan": "gold", "age": 30, "vip": true})
            .as_object()
            .cloned()
            .unwrap();
        let contact = ContactAttributes {
            phone: "+4915112345678",
            first_name: Some("Ada"),
            last_name: None,
            email: None,
            gender: None,
            time_zone: Some("Europe/Berlin"),
            country: Some("DE"),
            number_type: Some("mobile"),
            opted_out: false,
            fields: &fields,
        };
        let holds = |source: &str| FilterExpr::parse(source).unwrap().matches(&contact);
        assert!(holds(
            r#"country = "DE" and fields.plan in ("gold","silver") and not opted_out"#
        ));
        assert!(holds("fields.age > 29.5 and fields.vip = true"));
        assert!(!holds("fields.age = \"30\""));
        assert!(!holds("last_name = \"x\""));
        assert!(holds("last_name != \"x\""));
        assert!(!holds("last_name < \"x\""));
        assert!(holds("last_name is null and first_name is not null"));
        assert!(holds("fields.missing is null"));
        assert!(holds("phone >= \"+49\" and phone < \"+50\""));
        assert!(!holds("first_name = \"ada\""));
        assert!(holds(
            "time_zone = \"Europe/Berlin\" and time_zone is not null"
        ));
        assert!(!holds("time_zone in (\"Europe/Paris\", \"UTC\")"));
    }

    #[test]
    fn genders_compare_in_their_stored_spelling() {
        let fields = serde_json::Map::new();
        let contact = ContactAttributes {
            phone: "+4915112345678",
            first_name: None,
            last_name: None,
            email: None,
            gender: Some("female"),
            time_zone: None,
            country: None,
            number_type: None,
            opted_out: false,
            fields: &fields,
        };
        let holds = |source: &str| FilterExpr::parse(source).unwrap().matches(&contact);
        assert!(holds("gender = \"Female\""));
        assert!(holds("gender = \"F\""));
        assert!(holds("gender in (\"M\", \"f\")"));
        assert!(!holds("gender != \"FEMALE\""));
        // The rule keeps the client's own words.
        assert_eq!(
            FilterExpr::parse("gender = \"F\"").unwrap().source(),
            "gender = \"F\""
        );
    }

    proptest! {
        /// The parser never panics, whatever it is given.
        #[test]
        fn never_panics(source in ".{0,200}") {
            let _ = FilterExpr::parse(&source);
        }

        /// Nor on inputs made of the language's own pieces.
        #[test]
        fn never_panics_on_near_misses(words in prop::collection::vec(
            prop::sample::select(vec!["(", ")", "and", "or", "not", "in", "is", "null", "=", "!=",
                "<", ">=", ",", "\"x\"", "1.5", "true", "phone", "fields.a", "opted_out", "\""]),
            0..30)) {
            let _ = FilterExpr::parse(&words.join(" "));
        }
    }
}
