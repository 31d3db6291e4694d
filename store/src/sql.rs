//! Small SQL conversions shared by every table module, with no behaviour of their own: the
//! clock as the run format writes it, wire integers to and from SQLite's `i64`, and the text of
//! multi-row `INSERT … VALUES` statements. Depends on nothing else in the crate.

/// Seconds since the Unix epoch, as the run format writes times (the protocol's clock).
pub(crate) use runicorn_protocol::run_format::unix_now;

/// A wire `u64` (offset, size, count) as SQLite's `i64`. Nothing real reaches 2^63; a peer that
/// sends more gets the largest value instead of a wrapped negative one.
pub(crate) fn to_sql_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The reverse of [`to_sql_int`] for columns that are never negative.
pub(crate) fn from_sql_int(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// `head` followed by `rows` groups of `columns` anonymous parameters: one multi-row
/// `INSERT … VALUES` (points, totals, tiles).
pub(crate) fn multi_row_sql(head: &str, rows: usize, columns: usize) -> String {
    let group = format!("({})", vec!["?"; columns].join(","));
    let mut sql = String::with_capacity(head.len() + rows * (group.len() + 1));
    sql.push_str(head);
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&group);
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_integers_saturate_instead_of_wrapping() {
        assert_eq!(to_sql_int(5), 5);
        assert_eq!(to_sql_int(u64::MAX), i64::MAX);
        assert_eq!(from_sql_int(7), 7);
        assert_eq!(from_sql_int(-1), 0);
    }

    #[test]
    fn multi_row_statements_have_one_group_per_row() {
        assert_eq!(
            multi_row_sql("INSERT INTO t VALUES ", 2, 3),
            "INSERT INTO t VALUES (?,?,?),(?,?,?)"
        );
        assert_eq!(multi_row_sql("X ", 0, 3), "X ");
    }
}
