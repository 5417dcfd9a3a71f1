//! Printing admin API answers: aligned tables and `field: value` lines for people, or the JSON
//! as the API sent it (`--json`).

use serde_json::Value;

/// Headers and rows of a table.
pub type Table = (Vec<&'static str>, Vec<Vec<String>>);

/// Prints JSON, pretty.
pub fn json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// One entity as `field: value` lines.
pub fn object(value: &Value, as_json: bool) {
    if as_json {
        return json(value);
    }
    let Some(map) = value.as_object() else {
        return json(value);
    };
    let width = map.keys().map(String::len).max().unwrap_or(0);
    for (field, v) in map {
        let text = match field.as_str() {
            "budgets" => budgets(v),
            _ => cell(v),
        };
        println!("{field:<width$}  {text}");
    }
}

/// A new or rotated key: its fields, then its secret with a warning, once.
pub fn secret(key: &Value, as_json: bool, what: &str) {
    if as_json {
        json(key);
    } else {
        let mut rest = key.clone();
        if let Some(map) = rest.as_object_mut() {
            map.remove("key");
        }
        object(&rest, false);
        println!();
        println!("key {what}. Its secret:");
        println!();
        println!("    {}", key["key"].as_str().unwrap_or("?"));
        println!();
    }
    eprintln!("warning: the secret is shown only now and cannot be shown again: store it safely");
}

/// A page of a listing as a table, with how to get the next page.
pub fn listing(page: &Value, as_json: bool, rows: fn(&[Value]) -> Table) {
    if as_json {
        return json(page);
    }
    let data = page["data"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let (headers, rows) = rows(data);
    print!("{}", table(&headers, &rows));
    if let Some(next) = page["next"].as_str() {
        eprintln!("more: repeat with --after {next}");
    }
}

/// Rows of the key listing.
pub fn key_rows(keys: &[Value]) -> Table {
    let headers = vec![
        "ID", "NAME", "KEY", "TEAM", "CUSTOMER", "STATUS", "BUDGETS", "EXPIRES",
    ];
    let rows = keys
        .iter()
        .map(|k| {
            let status = if k["revoked"] == true {
                "revoked"
            } else if k["enabled"] == false {
                "disabled"
            } else {
                "active"
            };
            vec![
                cell(&k["id"]),
                cell(&k["name"]),
                cell(&k["key_hint"]),
                cell(&k["team"]),
                cell(&k["customer"]),
                status.to_owned(),
                budgets(&k["budgets"]),
                cell(&k["expires_at"]),
            ]
        })
        .collect();
    (headers, rows)
}

/// Rows of a team or customer listing.
pub fn account_rows(accounts: &[Value]) -> Table {
    let headers = vec![
        "ID",
        "NAME",
        "ENABLED",
        "BUDGETS",
        "RPM",
        "TPM",
        "CONCURRENT",
        "MODELS",
    ];
    let rows = accounts
        .iter()
        .map(|a| {
            vec![
                cell(&a["id"]),
                cell(&a["name"]),
                cell(&a["enabled"]),
                budgets(&a["budgets"]),
                cell(&a["rpm"]),
                cell(&a["tpm"]),
                cell(&a["max_concurrent"]),
                cell(&a["models"]),
            ]
        })
        .collect();
    (headers, rows)
}

/// The usage report: one table of periods, one of budgets.
pub fn usage(report: &Value, as_json: bool) {
    if as_json {
        return json(report);
    }
    println!("usage of {}", cell(&report["scope"]));
    let periods: Vec<Vec<String>> = report["periods"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(label, p)| {
            vec![
                label.clone(),
                cell(&p["start"]),
                cell(&p["end"]),
                usd(&p["spend_usd"]),
                cell(&p["tokens"]),
                cell(&p["requests"]),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["PERIOD", "START", "END", "SPEND_USD", "TOKENS", "REQUESTS"],
            &periods
        )
    );
    let budgets: Vec<Vec<String>> = report["budgets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            vec![
                cell(&b["period"]),
                cell(&b["mode"]),
                usd(&b["amount_usd"]),
                usd(&b["spent_usd"]),
                usd(&b["remaining_usd"]),
            ]
        })
        .collect();
    if !budgets.is_empty() {
        println!();
        print!(
            "{}",
            table(
                &["BUDGET", "MODE", "AMOUNT_USD", "SPENT_USD", "REMAINING_USD"],
                &budgets
            )
        );
    }
}

/// Left-aligned columns, two spaces apart.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  "));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// A JSON value in a table cell: strings bare, nothing as `-`, lists comma-separated.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        Value::Object(map) if map.is_empty() => "-".to_owned(),
        other => other.to_string(),
    }
}

/// Dollars with up to six decimals, without trailing zeros.
fn usd(v: &Value) -> String {
    match v.as_f64() {
        Some(x) => {
            let text = format!("{x:.6}");
            let trimmed = text.trim_end_matches('0').trim_end_matches('.');
            if trimmed.is_empty() {
                "0".to_owned()
            } else {
                trimmed.to_owned()
            }
        }
        None => cell(v),
    }
}

/// Budgets in one cell: `$100/monthly, $5/daily (available)`.
fn budgets(v: &Value) -> String {
    let list: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            let mode = if b["mode"] == "available" {
                " (available)"
            } else {
                ""
            };
            format!("${}/{}{mode}", usd(&b["amount_usd"]), cell(&b["period"]))
        })
        .collect();
    if list.is_empty() {
        "-".to_owned()
    } else {
        list.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_and_cells_read_well() {
        let t = table(&["A", "BB"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    BB\nxyz  1\n");
        assert_eq!(usd(&json!(1.5)), "1.5");
        assert_eq!(usd(&json!(100.0)), "100");
        assert_eq!(usd(&json!(0.000001)), "0.000001");
        assert_eq!(usd(&json!(0.0)), "0");
        assert_eq!(cell(&json!(["a", "b"])), "a,b");
        assert_eq!(cell(&Value::Null), "-");
        assert_eq!(
            budgets(&json!([
                {"amount_usd": 100.0, "period": "monthly", "mode": "strict"},
                {"amount_usd": 5, "period": "daily", "mode": "available"}
            ])),
            "$100/monthly, $5/daily (available)"
        );
    }
}
