//! A small expression language for eligibility rules and filter predicates.
//!
//! ```text
//! expr    := or
//! or      := and ("or" and)*
//! and     := not ("and" not)*
//! not     := "not" not | cmp
//! cmp     := sum (op sum | ["not"] "in" "(" literal ("," literal)* ")" | "is" ["not"] "null")?
//! op      := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
//! sum     := product (("+" | "-") product)*
//! product := unary (("*" | "/") unary)*
//! unary   := "-" unary | primary
//! primary := number | 'string' | "string" | true | false | null | identifier | "(" expr ")"
//! ```
//!
//! Evaluation follows SQL's three-valued logic: anything compared with `null` is `null`,
//! and a rule holds only when it evaluates to `true`. Type mismatches at run time (a string
//! plus a number) give `null`, never a panic. Parsing happens once; errors give the byte
//! position.

use crate::error::{Error, Result};

/// A runtime value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
}

impl Value {
    fn as_num(&self) -> Option<f64> {
        match self {
            Value::Num(x) => Some(*x),
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            _ => None,
        }
    }
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Lit(Value),
    /// A variable, with its byte position in the source.
    Var(String, usize),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
    In {
        expr: Box<Expr>,
        list: Vec<Value>,
        negated: bool,
    },
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Ident(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn err(position: usize, message: impl Into<String>) -> Error {
    Error::Expression {
        context: "expression".into(),
        position,
        message: message.into(),
    }
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push((Tok::LParen, start));
                i += 1;
            }
            b')' => {
                out.push((Tok::RParen, start));
                i += 1;
            }
            b',' => {
                out.push((Tok::Comma, start));
                i += 1;
            }
            b'\'' | b'"' => {
                let close = src[i + 1..]
                    .find(c as char)
                    .ok_or_else(|| err(start, "unterminated string"))?;
                out.push((Tok::Str(src[i + 1..i + 1 + close].to_string()), start));
                i += close + 2;
            }
            b'0'..=b'9' | b'.' => {
                while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                    i += 1;
                }
                let text = &src[start..i];
                let n = text
                    .parse::<f64>()
                    .map_err(|_| err(start, format!("`{text}` is not a number")))?;
                out.push((Tok::Num(n), start));
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                out.push((Tok::Ident(src[start..i].to_string()), start));
            }
            _ => {
                let two = src.get(i..i + 2).unwrap_or("");
                let op = ["<=", ">=", "!=", "<>", "=="]
                    .into_iter()
                    .find(|o| *o == two)
                    .or_else(|| {
                        ["=", "<", ">", "+", "-", "*", "/"]
                            .into_iter()
                            .find(|o| o.as_bytes()[0] == c)
                    })
                    .ok_or_else(|| {
                        err(
                            start,
                            format!(
                                "unexpected character `{}`",
                                &src[start..].chars().next().unwrap_or('?')
                            ),
                        )
                    })?;
                out.push((Tok::Op(op), start));
                i += op.len();
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }
    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |(_, p)| *p)
    }
    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(kw))
    }
    fn eat_keyword(&mut self, kw: &str) -> bool {
        let hit = self.keyword(kw);
        if hit {
            self.pos += 1;
        }
        hit
    }
    fn eat(&mut self, t: &Tok) -> bool {
        let hit = self.peek() == Some(t);
        if hit {
            self.pos += 1;
        }
        hit
    }
    fn expect(&mut self, t: &Tok, what: &str) -> Result<()> {
        if self.eat(t) {
            Ok(())
        } else {
            Err(err(self.at(), format!("expected {what}")))
        }
    }

    fn or(&mut self) -> Result<Expr> {
        let mut left = self.and()?;
        while self.eat_keyword("or") {
            let right = self.and()?;
            left = Expr::Bin(BinOp::Or, Box::new(left), Box::new(right));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Expr> {
        let mut left = self.not()?;
        while self.eat_keyword("and") {
            let right = self.not()?;
            left = Expr::Bin(BinOp::And, Box::new(left), Box::new(right));
        }
        Ok(left)
    }
    fn not(&mut self) -> Result<Expr> {
        if self.eat_keyword("not") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.cmp()
    }
    fn cmp(&mut self) -> Result<Expr> {
        let left = self.sum()?;
        if let Some(Tok::Op(op)) = self.peek() {
            let op = match *op {
                "=" | "==" => Some(BinOp::Eq),
                "!=" | "<>" => Some(BinOp::Ne),
                "<" => Some(BinOp::Lt),
                "<=" => Some(BinOp::Le),
                ">" => Some(BinOp::Gt),
                ">=" => Some(BinOp::Ge),
                _ => None,
            };
            if let Some(op) = op {
                self.pos += 1;
                let right = self.sum()?;
                return Ok(Expr::Bin(op, Box::new(left), Box::new(right)));
            }
        }
        let negated = self.keyword("not")
            && matches!(self.toks.get(self.pos + 1), Some((Tok::Ident(s), _)) if s.eq_ignore_ascii_case("in"));
        if negated {
            self.pos += 1;
        }
        if self.eat_keyword("in") {
            self.expect(&Tok::LParen, "`(` after `in`")?;
            let mut list = Vec::new();
            loop {
                let at = self.at();
                match self.primary()? {
                    Expr::Lit(v) => list.push(v),
                    Expr::Neg(inner) => match *inner {
                        Expr::Lit(Value::Num(x)) => list.push(Value::Num(-x)),
                        _ => return Err(err(at, "`in` lists hold literals only")),
                    },
                    _ => return Err(err(at, "`in` lists hold literals only")),
                }
                if self.eat(&Tok::RParen) {
                    break;
                }
                self.expect(&Tok::Comma, "`,` or `)` in the `in` list")?;
            }
            return Ok(Expr::In {
                expr: Box::new(left),
                list,
                negated,
            });
        }
        if self.eat_keyword("is") {
            let negated = self.eat_keyword("not");
            if !self.eat_keyword("null") {
                return Err(err(self.at(), "expected `null` after `is`"));
            }
            return Ok(Expr::IsNull {
                expr: Box::new(left),
                negated,
            });
        }
        Ok(left)
    }
    fn sum(&mut self) -> Result<Expr> {
        let mut left = self.product()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op("+")) => BinOp::Add,
                Some(Tok::Op("-")) => BinOp::Sub,
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.product()?;
            left = Expr::Bin(op, Box::new(left), Box::new(right));
        }
    }
    fn product(&mut self) -> Result<Expr> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op("*")) => BinOp::Mul,
                Some(Tok::Op("/")) => BinOp::Div,
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = self.unary()?;
            left = Expr::Bin(op, Box::new(left), Box::new(right));
        }
    }
    fn unary(&mut self) -> Result<Expr> {
        if self.eat(&Tok::Op("-")) {
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        self.primary()
    }
    fn primary(&mut self) -> Result<Expr> {
        let at = self.at();
        let Some((tok, _)) = self.toks.get(self.pos).cloned() else {
            return Err(err(at, "unexpected end of expression"));
        };
        self.pos += 1;
        Ok(match tok {
            Tok::Num(n) => Expr::Lit(Value::Num(n)),
            Tok::Str(s) => Expr::Lit(Value::Str(s)),
            Tok::Ident(s) => match s.to_ascii_lowercase().as_str() {
                "true" => Expr::Lit(Value::Bool(true)),
                "false" => Expr::Lit(Value::Bool(false)),
                "null" => Expr::Lit(Value::Null),
                "and" | "or" | "not" | "in" | "is" => {
                    return Err(err(at, format!("unexpected keyword `{s}`")));
                }
                _ => Expr::Var(s, at),
            },
            Tok::LParen => {
                let e = self.or()?;
                self.expect(&Tok::RParen, "`)`")?;
                e
            }
            Tok::RParen => return Err(err(at, "unexpected `)`")),
            Tok::Comma => return Err(err(at, "unexpected `,`")),
            Tok::Op(o) => return Err(err(at, format!("unexpected `{o}`"))),
        })
    }
}

fn compare(op: BinOp, l: &Value, r: &Value) -> Value {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (l, r) {
        (Value::Null, _) | (_, Value::Null) => return Value::Null,
        (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
        (a, b) => match (a.as_num(), b.as_num()) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => None,
        },
    };
    compare_result(op, ord).map_or(Value::Null, Value::Bool)
}

/// The outcome of comparison `op` given how two non-null operands order (`None`: they do
/// not compare, e.g. a string and a number). `None` means `null`. Shared by every
/// evaluator of the language so their semantics cannot drift apart.
pub(crate) fn compare_result(op: BinOp, ord: Option<std::cmp::Ordering>) -> Option<bool> {
    use std::cmp::Ordering;
    let Some(o) = ord else {
        return match op {
            BinOp::Eq => Some(false),
            BinOp::Ne => Some(true),
            _ => None,
        };
    };
    Some(match op {
        BinOp::Eq => o == Ordering::Equal,
        BinOp::Ne => o != Ordering::Equal,
        BinOp::Lt => o == Ordering::Less,
        BinOp::Le => o != Ordering::Greater,
        BinOp::Gt => o == Ordering::Greater,
        BinOp::Ge => o != Ordering::Less,
        _ => return None,
    })
}

fn truth(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Num(x) => Some(*x != 0.0),
        _ => None,
    }
}

impl Expr {
    /// Parses `src`.
    pub fn parse(src: &str) -> Result<Expr> {
        let toks = lex(src)?;
        let mut p = Parser {
            toks,
            pos: 0,
            end: src.len(),
        };
        if p.toks.is_empty() {
            return Err(err(0, "empty expression"));
        }
        let e = p.or()?;
        if p.pos < p.toks.len() {
            return Err(err(p.at(), "unexpected trailing input"));
        }
        Ok(e)
    }

    /// Every variable the expression reads, with its position, in source order.
    pub fn variables(&self) -> Vec<(&str, usize)> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let Expr::Var(name, at) = e {
                out.push((name.as_str(), *at));
            }
        });
        out
    }

    fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Expr)) {
        f(self);
        match self {
            Expr::Neg(e) | Expr::Not(e) => e.walk(f),
            Expr::Bin(_, a, b) => {
                a.walk(f);
                b.walk(f);
            }
            Expr::In { expr, .. } | Expr::IsNull { expr, .. } => expr.walk(f),
            Expr::Lit(_) | Expr::Var(..) => {}
        }
    }

    /// Fails naming the first variable that `known` does not accept.
    pub fn check_variables(&self, known: impl Fn(&str) -> bool) -> Result<()> {
        match self.variables().into_iter().find(|(v, _)| !known(v)) {
            Some((v, at)) => Err(err(at, format!("unknown variable `{v}`"))),
            None => Ok(()),
        }
    }

    /// Evaluates with variables from `lookup` (unknown ones are `null`).
    pub fn eval(&self, lookup: &impl Fn(&str) -> Value) -> Value {
        match self {
            Expr::Lit(v) => v.clone(),
            Expr::Var(name, _) => lookup(name),
            Expr::Neg(e) => match e.eval(lookup).as_num() {
                Some(x) => Value::Num(-x),
                None => Value::Null,
            },
            Expr::Not(e) => match truth(&e.eval(lookup)) {
                Some(b) => Value::Bool(!b),
                None => Value::Null,
            },
            Expr::Bin(BinOp::And, a, b) => {
                let l = truth(&a.eval(lookup));
                if l == Some(false) {
                    return Value::Bool(false);
                }
                match (l, truth(&b.eval(lookup))) {
                    (_, Some(false)) => Value::Bool(false),
                    (Some(true), Some(true)) => Value::Bool(true),
                    _ => Value::Null,
                }
            }
            Expr::Bin(BinOp::Or, a, b) => {
                let l = truth(&a.eval(lookup));
                if l == Some(true) {
                    return Value::Bool(true);
                }
                match (l, truth(&b.eval(lookup))) {
                    (_, Some(true)) => Value::Bool(true),
                    (Some(false), Some(false)) => Value::Bool(false),
                    _ => Value::Null,
                }
            }
            Expr::Bin(op @ (BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div), a, b) => {
                match (a.eval(lookup).as_num(), b.eval(lookup).as_num()) {
                    (Some(x), Some(y)) => {
                        let v = match op {
                            BinOp::Add => x + y,
                            BinOp::Sub => x - y,
                            BinOp::Mul => x * y,
                            _ => x / y,
                        };
                        if v.is_finite() {
                            Value::Num(v)
                        } else {
                            Value::Null
                        }
                    }
                    _ => Value::Null,
                }
            }
            Expr::Bin(op, a, b) => compare(*op, &a.eval(lookup), &b.eval(lookup)),
            Expr::In {
                expr,
                list,
                negated,
            } => {
                let v = expr.eval(lookup);
                if v == Value::Null {
                    return Value::Null;
                }
                let hit = list
                    .iter()
                    .any(|item| compare(BinOp::Eq, &v, item) == Value::Bool(true));
                Value::Bool(hit != *negated)
            }
            Expr::IsNull { expr, negated } => {
                Value::Bool((expr.eval(lookup) == Value::Null) != *negated)
            }
        }
    }

    /// True only when the expression evaluates to `true` (SQL `WHERE` semantics).
    pub fn holds(&self, lookup: &impl Fn(&str) -> Value) -> bool {
        truth(&self.eval(lookup)) == Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Value {
        match name {
            "tenure_days" => Value::Num(10.0),
            "segment" => Value::Str("vip".into()),
            "cart" => Value::Bool(true),
            _ => Value::Null,
        }
    }

    fn holds(src: &str) -> bool {
        Expr::parse(src).unwrap().holds(&vars)
    }

    #[test]
    fn evaluates_comparisons_logic_and_arithmetic() {
        assert!(holds("tenure_days <= 30 and segment in ('regular', 'vip')"));
        assert!(holds("cart"));
        assert!(holds("not (tenure_days > 10)"));
        assert!(holds("tenure_days * 2 + 1 = 21"));
        assert!(holds("segment not in ('new')"));
        assert!(holds("last_nps is null"));
        assert!(!holds("last_nps <= 6"));
        assert!(holds("last_nps <= 6 or cart"));
        assert!(!holds("segment + 1 > 0"));
        assert!(holds("-tenure_days < 0"));
    }

    #[test]
    fn errors_give_positions() {
        for (src, pos) in [
            ("tenure_days >= ", 15),
            ("a and (b", 8),
            ("a # b", 2),
            ("'x", 0),
            ("a b", 2),
        ] {
            match Expr::parse(src) {
                Err(Error::Expression { position, .. }) => assert_eq!(position, pos, "{src}"),
                other => panic!("{src}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_variables_are_named() {
        let e = Expr::parse("tenure_days > 3 and foo = 1").unwrap();
        let msg = e
            .check_variables(|v| v == "tenure_days")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("foo") && msg.contains("position 20"), "{msg}");
    }
}
