//! For tests and fuzz targets: a whole document read with [`Reader`] as a `serde_json::Value`, to
//! compare with what serde_json reads from the same bytes ([`same`]).

use crate::{Error, Kind, Reader};
use serde_json::{Map, Number, Value};

/// Reads one document (and checks that nothing follows it).
pub fn to_serde_value(r: &mut Reader<'_>) -> Result<Value, Error> {
    let v = value(r)?;
    r.end()?;
    Ok(v)
}

fn value(r: &mut Reader<'_>) -> Result<Value, Error> {
    Ok(match r.peek_kind()? {
        Kind::Null => {
            r.null()?;
            Value::Null
        }
        Kind::Bool => Value::Bool(r.bool()?),
        Kind::Number => {
            let n = r.number()?;
            match (n.as_u64(), n.is_integer()) {
                (Some(u), true) => Value::Number(u.into()),
                (None, true) => {
                    let text = n.integer_text().unwrap_or_default();
                    Value::Number(
                        text.parse::<i64>()
                            .map(Number::from)
                            .unwrap_or_else(|_| 0.into()),
                    )
                }
                _ => Number::from_f64(n.as_f64()).map_or(Value::Null, Value::Number),
            }
        }
        Kind::String => Value::String(r.string()?),
        Kind::Array => {
            r.begin_array("a sequence")?;
            let mut list = Vec::new();
            while r.next_element()? {
                list.push(value(r)?);
            }
            Value::Array(list)
        }
        Kind::Object => {
            r.begin_object("a map")?;
            let mut map = Map::new();
            while let Some(key) = r.next_key()? {
                let key = key.to_owned();
                let v = value(r)?;
                map.insert(key, v);
            }
            Value::Object(map)
        }
    })
}

/// The same document: equal, floats within a relative 1e-14 (serde_json's float parsing is not
/// exactly rounded either), integers exactly.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            match (x.as_u64(), y.as_u64(), x.as_i64(), y.as_i64()) {
                (Some(p), Some(q), _, _) => p == q,
                (None, None, Some(p), Some(q)) => p == q,
                _ if x.is_f64() && y.is_f64() => {
                    let (p, q) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                    p == q || (p - q).abs() <= 1e-14 * p.abs().max(q.abs())
                }
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((k, p), (l, q))| k == l && same(p, q))
        }
        _ => a == b,
    }
}
