//! `runicorn-hub metrics RUN`: a run's metrics out of the store, whatever the state of its
//! server. A table of its keys (points, steps, last, min, max) by default; every stored point
//! with `--csv` (long form: `key,step,time,value`, for spreadsheets and `pandas.read_csv`) or
//! `--json` (the API's series shape, `GET /api/runs/{run}/metrics?raw=1`). Points are read a
//! page at a time, so a run of millions of points streams out in bounded memory.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use globset::{Glob, GlobSet, GlobSetBuilder};
use runicorn_cli::color_stdout;
use runicorn_cli::csv::{self, number};
use runicorn_cli::human::figure;
use runicorn_cli::safe;
use runicorn_cli::table::{Align, Cell, Table};
use runicorn_hub::store_thread::StoreHandle;
use runicorn_store::{MetricKey, RunRef, RunRow, SeriesPoints};
use serde_json::json;

use super::list::{describe_run as describe, parse_run_ref, run_json};

/// Points read from the store at a time.
const PAGE_POINTS: usize = 50_000;

#[derive(clap::Args, Debug)]
pub struct MetricsArgs {
    /// The run: a key (42), a run id (20261202_150537_a4f9e9) or REMOTE/RUN_ID
    #[arg(value_name = "RUN", value_parser = parse_run_ref)]
    pub run: RunRef,
    /// Only these metric keys (comma-separated; globs allowed: 'train/*', 'val_*')
    #[arg(long, value_name = "KEYS", value_delimiter = ',')]
    pub keys: Vec<String>,
    /// Every stored point as CSV: key,step,time,value (time in Unix seconds, empty when the
    /// point had none; non-finite values as NaN, inf, -inf)
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
    /// Every stored point as JSON: {"run": {...}, "series": [{"key", "steps", "times",
    /// "values"}]}, the API's shape (non-finite values as null)
    #[arg(long)]
    pub json: bool,
}

pub fn run(hub_dir: Option<PathBuf>, args: MetricsArgs) -> anyhow::Result<u8> {
    let (store, _dir) = super::open_store(hub_dir)?;
    let rt = super::runtime()?;
    rt.block_on(print(&store, args))?;
    Ok(0)
}

/// The globs of `--keys`, compiled once.
fn key_matcher(patterns: &[String]) -> anyhow::Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        // `/` is an ordinary character in metric keys: `*` crosses it.
        let glob = Glob::new(pattern)
            .with_context(|| format!("--keys: {pattern:?} is not a valid glob"))?;
        set.add(glob);
    }
    Ok(Some(
        set.build().context("--keys: cannot compile the globs")?,
    ))
}

async fn print(store: &StoreHandle, args: MetricsArgs) -> anyhow::Result<()> {
    let matcher = key_matcher(&args.keys)?;
    let reference = args.run.clone();
    let (run, keys) = store
        .call(move |s| {
            let key = s.resolve_run(&reference)?;
            // Resolved a moment ago on this connection: only a concurrent removal loses it.
            let run = s
                .run_by_key(key)?
                .with_context(|| format!("run {} left the store while being read", key.0))?;
            let keys = s.metric_keys(key)?;
            Ok::<_, anyhow::Error>((run, keys))
        })
        .await??;
    let chosen: Vec<MetricKey> = keys
        .into_iter()
        .filter(|k| matcher.as_ref().is_none_or(|m| m.is_match(&k.name)))
        .collect();
    if chosen.is_empty() {
        if args.keys.is_empty() {
            bail!(
                "run {} has no metrics in the hub's store yet (it logged none, or its points \
                 are still being synced)",
                describe(&run)
            );
        }
        bail!(
            "no metric key of run {} matches --keys {}; `runicorn-hub metrics {}` lists its keys",
            describe(&run),
            safe(&args.keys.join(",")),
            run.key.0
        );
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.csv {
        write!(out, "key,step,time,value{}", csv::LINE_END)?;
        for key in &chosen {
            let name = csv::field(&key.name);
            each_page(store, &run, &key.name, |page| {
                for i in 0..page.steps.len() {
                    let time = page.times[i].map(number).unwrap_or_default();
                    write!(
                        out,
                        "{name},{},{time},{}{}",
                        page.steps[i],
                        number(page.values[i]),
                        csv::LINE_END
                    )?;
                }
                Ok(())
            })
            .await?;
        }
    } else if args.json {
        // Written piece by piece: a run's whole series never sits in memory as one value.
        write!(out, "{{\"run\": {}, \"series\": [", run_json(&run))?;
        for (n, key) in chosen.iter().enumerate() {
            let mut series = SeriesPoints::default();
            each_page(store, &run, &key.name, |page| {
                series.steps.extend_from_slice(&page.steps);
                series.times.extend_from_slice(&page.times);
                series.values.extend_from_slice(&page.values);
                Ok(())
            })
            .await?;
            let value = json!({
                "key": key.name,
                "total": series.steps.len(),
                "steps": series.steps,
                "times": series.times,
                "values": series.values,
            });
            write!(out, "{}{}", if n == 0 { "" } else { ", " }, value)?;
        }
        writeln!(out, "]}}")?;
    } else {
        let mut table = Table::new(&[
            ("KEY", Align::Left),
            ("POINTS", Align::Right),
            ("FIRST STEP", Align::Right),
            ("LAST STEP", Align::Right),
            ("LAST", Align::Right),
            ("MIN", Align::Right),
            ("MAX", Align::Right),
        ]);
        for key in &chosen {
            let mut stats = KeyStats::default();
            each_page(store, &run, &key.name, |page| {
                for &v in &page.values {
                    stats.add(v);
                }
                Ok(())
            })
            .await?;
            let shown = |v: Option<f64>| v.map(short_number).unwrap_or_default();
            table.push([
                Cell::from(safe(&key.name).into_owned()),
                figure(key.points).into(),
                key.first_step.to_string().into(),
                key.last_step.to_string().into(),
                shown(stats.last).into(),
                shown(stats.min).into(),
                shown(stats.max).into(),
            ]);
        }
        writeln!(out, "run {}", describe(&run))?;
        table.write(&mut out, color_stdout())?;
    }
    out.flush()?;
    Ok(())
}

/// Calls `f` with each page of a key's points, in step order.
async fn each_page(
    store: &StoreHandle,
    run: &RunRow,
    key: &str,
    mut f: impl FnMut(&SeriesPoints) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let mut after = i64::MIN;
    loop {
        let (run_key, name) = (run.key, key.to_owned());
        let page = store
            .call(move |s| s.series_after(run_key, &name, after, PAGE_POINTS))
            .await??;
        f(&page)?;
        match page.steps.last() {
            Some(&last) if page.steps.len() == PAGE_POINTS => after = last,
            _ => return Ok(()),
        }
    }
}

/// Last, min and max of a series; NaN counts for none of them (it is a gap).
#[derive(Default)]
struct KeyStats {
    last: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
}

impl KeyStats {
    fn add(&mut self, v: f64) {
        if v.is_nan() {
            return;
        }
        self.last = Some(v);
        self.min = Some(self.min.map_or(v, |m| m.min(v)));
        self.max = Some(self.max.map_or(v, |m| m.max(v)));
    }
}

/// A number for the table: at most 6 significant digits.
fn short_number(v: f64) -> String {
    if v.is_infinite() || v == 0.0 || (1e-4..1e6).contains(&v.abs()) {
        let s = format!("{v:.6}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s.len() > 12 {
            format!("{v:.4e}")
        } else {
            s.to_owned()
        }
    } else {
        format!("{v:.4e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_skip_gaps() {
        let mut s = KeyStats::default();
        for v in [3.0, f64::NAN, 1.0, 2.0, f64::NAN] {
            s.add(v);
        }
        assert_eq!((s.last, s.min, s.max), (Some(2.0), Some(1.0), Some(3.0)));
    }

    #[test]
    fn table_numbers_are_short() {
        assert_eq!(short_number(0.25), "0.25");
        assert_eq!(short_number(2.0), "2");
        assert_eq!(short_number(1e-9), "1.0000e-9");
    }
}
