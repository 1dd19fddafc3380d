//! `when` conditions: a small expression language, parsed at load time and evaluated after substitution.
//!
//! Grammar (lowest precedence first):
//!
//! ```text
//! expression := and ( "||" and )*
//! and        := unary ( "&&" unary )*
//! unary      := "!" unary | "(" expression ")" | comparison
//! comparison := operand ( ("==" | "!=" | "<" | ">" | "<=" | ">=") operand )?
//! operand    := 'single quoted' | "double quoted" | bare word
//! ```
//!
//! Operands are templates: a bare word runs to the next blank, parenthesis or operator character,
//! but a `{{...}}` reference inside it is taken whole; quoted operands may hold blanks and operator
//! characters, and a backslash escapes the next character. References are replaced by their values
//! *before* comparison, so a value holding `&&` or a blank is still one operand. A comparison is
//! numeric when both sides parse as numbers (`f64`), otherwise it compares strings (byte order). A
//! lone operand must evaluate to `true` or `false`.
//!
//! An expression is at most [`MAX_CONDITION_BYTES`] long and nests at most
//! [`MAX_CONDITION_DEPTH`] levels (each `!`, `(`, `&&` and `||` is a level): parsing,
//! evaluating, printing and dropping a condition all recurse over its tree, and a spec must not be
//! able to overflow the stack of the runner or of the cluster controller that parses it.

use std::cmp::Ordering;
use std::fmt;

use crate::template::{Reference, Template, TemplateError};

/// The longest `when` expression accepted, in bytes.
pub const MAX_CONDITION_BYTES: usize = 4096;

/// The deepest nesting accepted: a tree of this height recurses harmlessly on any stack.
pub const MAX_CONDITION_DEPTH: usize = 64;

/// A parsed `when` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `left || right`.
    Or(Box<Condition>, Box<Condition>),
    /// `left && right`.
    And(Box<Condition>, Box<Condition>),
    /// `!inner`.
    Not(Box<Condition>),
    /// `left OP right`.
    Compare {
        /// The left operand.
        left: Operand,
        /// The comparison.
        operator: ComparisonOperator,
        /// The right operand.
        right: Operand,
    },
    /// A lone operand that must evaluate to `true` or `false`.
    Truth(Operand),
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Operand {
    /// The operand's text, with references.
    pub template: Template,
    /// It was written in quotes (the Argo compiler keeps it a string).
    pub quoted: bool,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComparisonOperator {
    /// `==`
    Equal,
    /// `!=`
    NotEqual,
    /// `<`
    Less,
    /// `>`
    Greater,
    /// `<=`
    LessOrEqual,
    /// `>=`
    GreaterOrEqual,
}

/// A `when` expression that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionSyntaxError {
    /// Nothing to evaluate.
    #[error("empty expression")]
    Empty,
    /// Longer than [`MAX_CONDITION_BYTES`].
    #[error("expression is {length} bytes long; the limit is {limit}")]
    TooLong {
        /// The expression's length in bytes.
        length: usize,
        /// The limit.
        limit: usize,
    },
    /// Nested deeper than [`MAX_CONDITION_DEPTH`].
    #[error("expression nests deeper than {limit} levels at byte {position}")]
    TooDeep {
        /// Byte offset where the limit was passed.
        position: usize,
        /// The limit.
        limit: usize,
    },
    /// A character or token where it cannot stand.
    #[error("unexpected {found} at byte {position}")]
    Unexpected {
        /// What was found, quoted.
        found: String,
        /// Byte offset in the expression.
        position: usize,
    },
    /// The expression stopped where more was needed.
    #[error("expression ends early: expected {expected}")]
    EndsEarly {
        /// What was expected.
        expected: &'static str,
    },
    /// A quote without its closing quote.
    #[error("unclosed quote at byte {0}")]
    UnclosedQuote(usize),
    /// An operand whose reference is malformed.
    #[error("operand at byte {position}: {source}")]
    Template {
        /// Byte offset of the operand.
        position: usize,
        /// Why the reference is malformed.
        #[source]
        source: TemplateError,
    },
}

/// A condition that parsed but cannot be evaluated on the values it got.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionEvaluationError {
    /// A lone operand that is neither `true` nor `false`.
    #[error("operand `{0}` is neither true nor false")]
    NotBoolean(String),
}

// === impl Condition ===

impl Condition {
    /// Parses a `when` expression.
    pub fn parse(text: &str) -> Result<Self, ConditionSyntaxError> {
        if text.len() > MAX_CONDITION_BYTES {
            return Err(ConditionSyntaxError::TooLong {
                length: text.len(),
                limit: MAX_CONDITION_BYTES,
            });
        }
        let tokens = tokenize(text)?;
        if tokens.is_empty() {
            return Err(ConditionSyntaxError::Empty);
        }
        let mut parser = Parser {
            tokens,
            position: 0,
        };
        let (condition, _) = parser.expression(0)?;
        if let Some((token, position)) = parser.tokens.get(parser.position) {
            return Err(ConditionSyntaxError::Unexpected {
                found: token.describe(),
                position: *position,
            });
        }
        Ok(condition)
    }

    /// Every reference in the expression.
    pub fn references(&self) -> Vec<&Reference> {
        let mut found = Vec::new();
        self.collect_references(&mut found);
        found
    }

    fn collect_references<'a>(&'a self, found: &mut Vec<&'a Reference>) {
        match self {
            Self::Or(left, right) | Self::And(left, right) => {
                left.collect_references(found);
                right.collect_references(found);
            }
            Self::Not(inner) => inner.collect_references(found),
            Self::Compare { left, right, .. } => {
                found.extend(left.template.references());
                found.extend(right.template.references());
            }
            Self::Truth(operand) => found.extend(operand.template.references()),
        }
    }

    /// Evaluates the expression; `render` substitutes the references of each operand.
    pub fn evaluate<E>(
        &self,
        render: &mut impl FnMut(&Template) -> Result<String, E>,
    ) -> Result<Result<bool, ConditionEvaluationError>, E> {
        Ok(match self {
            Self::Or(left, right) => match left.evaluate(render)? {
                Ok(true) => Ok(true),
                Ok(false) => right.evaluate(render)?,
                Err(error) => Err(error),
            },
            Self::And(left, right) => match left.evaluate(render)? {
                Ok(false) => Ok(false),
                Ok(true) => right.evaluate(render)?,
                Err(error) => Err(error),
            },
            Self::Not(inner) => inner.evaluate(render)?.map(|value| !value),
            Self::Compare {
                left,
                operator,
                right,
            } => {
                let left_value = render(&left.template)?;
                let right_value = render(&right.template)?;
                Ok(operator.holds(compare_values(&left_value, &right_value)))
            }
            Self::Truth(operand) => {
                let value = render(&operand.template)?;
                match value.trim() {
                    "true" => Ok(true),
                    "false" => Ok(false),
                    _ => Err(ConditionEvaluationError::NotBoolean(value)),
                }
            }
        })
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Or(left, right) => write!(formatter, "({left} || {right})"),
            Self::And(left, right) => write!(formatter, "({left} && {right})"),
            Self::Not(inner) => write!(formatter, "!{inner}"),
            Self::Compare {
                left,
                operator,
                right,
            } => write!(formatter, "{left} {operator} {right}"),
            Self::Truth(operand) => write!(formatter, "{operand}"),
        }
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.quoted {
            let text = self
                .template
                .to_string()
                .replace('\\', "\\\\")
                .replace('\'', "\\'");
            write!(formatter, "'{text}'")
        } else {
            write!(formatter, "{}", self.template)
        }
    }
}

// === impl ComparisonOperator ===

impl ComparisonOperator {
    /// The operator's spelling.
    pub fn symbol(self) -> &'static str {
        match self {
            Self::Equal => "==",
            Self::NotEqual => "!=",
            Self::Less => "<",
            Self::Greater => ">",
            Self::LessOrEqual => "<=",
            Self::GreaterOrEqual => ">=",
        }
    }

    fn holds(self, ordering: Option<Ordering>) -> bool {
        match (self, ordering) {
            (Self::Equal, ordering) => ordering == Some(Ordering::Equal),
            (Self::NotEqual, ordering) => ordering != Some(Ordering::Equal),
            (_, None) => false,
            (Self::Less, Some(ordering)) => ordering == Ordering::Less,
            (Self::Greater, Some(ordering)) => ordering == Ordering::Greater,
            (Self::LessOrEqual, Some(ordering)) => ordering != Ordering::Greater,
            (Self::GreaterOrEqual, Some(ordering)) => ordering != Ordering::Less,
        }
    }
}

impl fmt::Display for ComparisonOperator {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.symbol())
    }
}

/// Compares numerically when both sides are numbers, else as strings; `None` for NaN.
fn compare_values(left: &str, right: &str) -> Option<Ordering> {
    match (left.trim().parse::<f64>(), right.trim().parse::<f64>()) {
        (Ok(left_number), Ok(right_number)) => left_number.partial_cmp(&right_number),
        _ => Some(left.cmp(right)),
    }
}

// === tokenizer ===

#[derive(Debug, Clone, PartialEq)]
enum Token {
    OpenParen,
    CloseParen,
    Not,
    And,
    Or,
    Comparison(ComparisonOperator),
    Operand(Operand),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Self::OpenParen => "`(`".to_owned(),
            Self::CloseParen => "`)`".to_owned(),
            Self::Not => "`!`".to_owned(),
            Self::And => "`&&`".to_owned(),
            Self::Or => "`||`".to_owned(),
            Self::Comparison(operator) => format!("`{operator}`"),
            Self::Operand(operand) => format!("operand `{operand}`"),
        }
    }
}

fn is_operator_character(character: char) -> bool {
    matches!(character, '(' | ')' | '=' | '!' | '<' | '>' | '&' | '|')
}

fn tokenize(text: &str) -> Result<Vec<(Token, usize)>, ConditionSyntaxError> {
    let mut tokens = Vec::new();
    let mut index = 0;
    while index < text.len() {
        let rest = &text[index..];
        // `index` always sits on a character boundary: every advance below is by whole characters
        // or by ASCII operator bytes.
        let Some(character) = rest.chars().next() else {
            break;
        };
        if character.is_whitespace() {
            index += character.len_utf8();
            continue;
        }
        let two = rest.get(..2).unwrap_or("");
        let (token, width) = match (character, two) {
            (_, "&&") => (Token::And, 2),
            (_, "||") => (Token::Or, 2),
            (_, "==") => (Token::Comparison(ComparisonOperator::Equal), 2),
            (_, "!=") => (Token::Comparison(ComparisonOperator::NotEqual), 2),
            (_, "<=") => (Token::Comparison(ComparisonOperator::LessOrEqual), 2),
            (_, ">=") => (Token::Comparison(ComparisonOperator::GreaterOrEqual), 2),
            ('<', _) => (Token::Comparison(ComparisonOperator::Less), 1),
            ('>', _) => (Token::Comparison(ComparisonOperator::Greater), 1),
            ('!', _) => (Token::Not, 1),
            ('(', _) => (Token::OpenParen, 1),
            (')', _) => (Token::CloseParen, 1),
            ('=' | '&' | '|', _) => {
                return Err(ConditionSyntaxError::Unexpected {
                    found: format!("`{character}`"),
                    position: index,
                });
            }
            ('\'' | '"', _) => {
                let (content, width) = read_quoted(rest, character)
                    .ok_or(ConditionSyntaxError::UnclosedQuote(index))?;
                let template =
                    Template::parse(&content).map_err(|source| ConditionSyntaxError::Template {
                        position: index,
                        source,
                    })?;
                (
                    Token::Operand(Operand {
                        template,
                        quoted: true,
                    }),
                    width,
                )
            }
            _ => {
                let width = bare_word_width(rest);
                let template = Template::parse(&rest[..width]).map_err(|source| {
                    ConditionSyntaxError::Template {
                        position: index,
                        source,
                    }
                })?;
                (
                    Token::Operand(Operand {
                        template,
                        quoted: false,
                    }),
                    width,
                )
            }
        };
        tokens.push((token, index));
        index += width;
    }
    Ok(tokens)
}

/// Reads a quoted operand starting at `rest[0] == quote`; returns its content and byte width.
fn read_quoted(rest: &str, quote: char) -> Option<(String, usize)> {
    let mut content = String::new();
    let mut characters = rest.char_indices().skip(1);
    while let Some((offset, character)) = characters.next() {
        if character == '\\' {
            let (_, escaped) = characters.next()?;
            content.push(escaped);
        } else if character == quote {
            return Some((content, offset + character.len_utf8()));
        } else {
            content.push(character);
        }
    }
    None
}

/// The byte width of a bare word: up to a blank or operator character, taking `{{...}}` whole.
fn bare_word_width(rest: &str) -> usize {
    let mut index = 0;
    while index < rest.len() {
        let tail = &rest[index..];
        if tail.starts_with("{{") {
            match tail.find("}}") {
                Some(close) => {
                    index += close + 2;
                    continue;
                }
                // Let the template parser report the unclosed reference.
                None => return rest.len(),
            }
        }
        let Some(character) = tail.chars().next() else {
            break;
        };
        if character.is_whitespace() || is_operator_character(character) {
            break;
        }
        index += character.len_utf8();
    }
    index
}

// === parser ===

struct Parser {
    tokens: Vec<(Token, usize)>,
    position: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position).map(|(token, _)| token)
    }

    fn next(&mut self, expected: &'static str) -> Result<(Token, usize), ConditionSyntaxError> {
        let token = self
            .tokens
            .get(self.position)
            .cloned()
            .ok_or(ConditionSyntaxError::EndsEarly { expected })?;
        self.position += 1;
        Ok(token)
    }

    /// The byte offset of the token at `position`, or of the end.
    fn offset(&self, position: usize) -> usize {
        self.tokens
            .get(position)
            .or(self.tokens.last())
            .map_or(0, |(_, offset)| *offset)
    }

    /// Fails when a subtree of `height` under `nesting` enclosing levels passes the depth limit.
    fn check_depth(
        &self,
        nesting: usize,
        height: usize,
        position: usize,
    ) -> Result<(), ConditionSyntaxError> {
        if nesting + height > MAX_CONDITION_DEPTH {
            return Err(ConditionSyntaxError::TooDeep {
                position: self.offset(position),
                limit: MAX_CONDITION_DEPTH,
            });
        }
        Ok(())
    }

    // Each parse function takes how many levels enclose it (`nesting`) and returns the parsed
    // condition with the height of its tree, so both the recursion of the parser and the tree
    // it builds stay within the depth limit.

    fn expression(&mut self, nesting: usize) -> Result<(Condition, usize), ConditionSyntaxError> {
        let (mut left, mut height) = self.and(nesting)?;
        while self.peek() == Some(&Token::Or) {
            let operator = self.position;
            self.position += 1;
            let (right, right_height) = self.and(nesting)?;
            height = height.max(right_height) + 1;
            self.check_depth(nesting, height, operator)?;
            left = Condition::Or(Box::new(left), Box::new(right));
        }
        Ok((left, height))
    }

    fn and(&mut self, nesting: usize) -> Result<(Condition, usize), ConditionSyntaxError> {
        let (mut left, mut height) = self.unary(nesting)?;
        while self.peek() == Some(&Token::And) {
            let operator = self.position;
            self.position += 1;
            let (right, right_height) = self.unary(nesting)?;
            height = height.max(right_height) + 1;
            self.check_depth(nesting, height, operator)?;
            left = Condition::And(Box::new(left), Box::new(right));
        }
        Ok((left, height))
    }

    fn unary(&mut self, nesting: usize) -> Result<(Condition, usize), ConditionSyntaxError> {
        let index = self.position;
        let (token, position) = self.next("an operand, `!` or `(`")?;
        match token {
            Token::Not => {
                self.check_depth(nesting, 1, index)?;
                let (inner, height) = self.unary(nesting + 1)?;
                Ok((Condition::Not(Box::new(inner)), height + 1))
            }
            Token::OpenParen => {
                self.check_depth(nesting, 1, index)?;
                let (inner, height) = self.expression(nesting + 1)?;
                match self.next("`)`")? {
                    (Token::CloseParen, _) => Ok((inner, height)),
                    (other, position) => Err(ConditionSyntaxError::Unexpected {
                        found: other.describe(),
                        position,
                    }),
                }
            }
            Token::Operand(left) => {
                let Some(Token::Comparison(operator)) = self.peek().cloned() else {
                    return Ok((Condition::Truth(left), 1));
                };
                self.position += 1;
                match self.next("an operand after the comparison")? {
                    (Token::Operand(right), _) => Ok((
                        Condition::Compare {
                            left,
                            operator,
                            right,
                        },
                        1,
                    )),
                    (other, position) => Err(ConditionSyntaxError::Unexpected {
                        found: other.describe(),
                        position,
                    }),
                }
            }
            other => Err(ConditionSyntaxError::Unexpected {
                found: other.describe(),
                position,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn evaluate(text: &str, values: &[(&str, &str)]) -> Result<bool, ConditionEvaluationError> {
        let values: BTreeMap<String, String> = values
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        let condition = Condition::parse(text).unwrap();
        let mut render = |template: &Template| -> Result<String, ()> {
            template.render(|reference| match reference {
                Reference::Param(name) => Ok(values[name].clone()),
                _ => Err(()),
            })
        };
        condition.evaluate(&mut render).unwrap()
    }

    #[test]
    fn compares_numbers_numerically_and_strings_by_bytes() {
        assert_eq!(evaluate("{{params.a}} > 9", &[("a", "10")]), Ok(true));
        assert_eq!(evaluate("{{params.a}} > 9", &[("a", "x")]), Ok(true));
        assert_eq!(evaluate("{{params.a}} <= 1e1", &[("a", "10.0")]), Ok(true));
        assert_eq!(evaluate("{{params.a}} == '10'", &[("a", "10.0")]), Ok(true));
        assert_eq!(evaluate("{{params.a}} == abc", &[("a", "abd")]), Ok(false));
        assert_eq!(evaluate("{{params.a}} != abc", &[("a", "abd")]), Ok(true));
        assert_eq!(evaluate("{{params.a}} >= b", &[("a", "a")]), Ok(false));
    }

    #[test]
    fn combines_with_precedence_negation_and_parentheses() {
        let values = [("a", "1"), ("b", "2")];
        assert_eq!(
            evaluate(
                "{{params.a}} == 1 || {{params.b}} == 3 && {{params.a}} == 5",
                &values
            ),
            Ok(true)
        );
        assert_eq!(
            evaluate(
                "({{params.a}} == 1 || {{params.b}} == 3) && {{params.a}} == 5",
                &values
            ),
            Ok(false)
        );
        assert_eq!(evaluate("!({{params.a}} == 1)", &values), Ok(false));
        assert_eq!(evaluate("!!true", &values), Ok(true));
    }

    #[test]
    fn substituted_values_with_operators_stay_one_operand() {
        assert_eq!(
            evaluate("'{{params.a}}' == 'x && y || (z'", &[("a", "x && y || (z")]),
            Ok(true)
        );
        assert_eq!(
            evaluate("{{params.a}} == 'it\\'s'", &[("a", "it's")]),
            Ok(true)
        );
    }

    #[test]
    fn lone_operands_must_be_booleans() {
        assert_eq!(evaluate("{{params.a}}", &[("a", "true")]), Ok(true));
        assert_eq!(
            evaluate("{{params.a}}", &[("a", "yes")]),
            Err(ConditionEvaluationError::NotBoolean("yes".into()))
        );
    }

    #[test]
    fn rejects_bad_syntax_with_a_position() {
        assert_eq!(Condition::parse("  "), Err(ConditionSyntaxError::Empty));
        assert!(matches!(
            Condition::parse("a = b"),
            Err(ConditionSyntaxError::Unexpected { position: 2, .. })
        ));
        assert!(matches!(
            Condition::parse("a >"),
            Err(ConditionSyntaxError::EndsEarly { .. })
        ));
        assert!(matches!(
            Condition::parse("(a == b"),
            Err(ConditionSyntaxError::EndsEarly { .. })
        ));
        assert!(matches!(
            Condition::parse("a == b)"),
            Err(ConditionSyntaxError::Unexpected { position: 6, .. })
        ));
        assert!(matches!(
            Condition::parse("a == 'b"),
            Err(ConditionSyntaxError::UnclosedQuote(5))
        ));
        assert!(matches!(
            Condition::parse("{{steps.x}} == 1"),
            Err(ConditionSyntaxError::Template { position: 0, .. })
        ));
        assert!(matches!(
            Condition::parse("a == b c"),
            Err(ConditionSyntaxError::Unexpected { position: 7, .. })
        ));
    }

    #[test]
    fn deep_or_long_expressions_are_refused_not_overflowing_the_stack() {
        let not_chain = format!("{}true", "!".repeat(20_000));
        let parentheses = format!("{}true{}", "(".repeat(3_000), ")".repeat(3_000));
        let and_chain = vec!["true"; 1_000].join(" && ");
        let or_chain = vec!["true"; 1_000].join(" || ");
        for text in [&not_chain, &parentheses, &and_chain, &or_chain] {
            let short = &text[..text.len().min(MAX_CONDITION_BYTES)];
            assert!(
                matches!(
                    Condition::parse(short),
                    Err(ConditionSyntaxError::TooDeep {
                        limit: MAX_CONDITION_DEPTH,
                        ..
                    })
                ),
                "{}",
                &short[..40]
            );
            assert!(matches!(
                Condition::parse(text),
                Err(ConditionSyntaxError::TooLong {
                    limit: MAX_CONDITION_BYTES,
                    ..
                })
            ));
        }
        let deepest = format!(
            "{}true{}",
            "(!".repeat(MAX_CONDITION_DEPTH / 2 - 1),
            ")".repeat(MAX_CONDITION_DEPTH / 2 - 1)
        );
        assert!(Condition::parse(&deepest).is_ok(), "{deepest}");
        let longest_chain = vec!["true"; MAX_CONDITION_DEPTH].join(" && ");
        assert!(Condition::parse(&longest_chain).is_ok());
        let one_more = vec!["true"; MAX_CONDITION_DEPTH + 1].join(" && ");
        assert!(matches!(
            Condition::parse(&one_more),
            Err(ConditionSyntaxError::TooDeep { .. })
        ));
    }
}
