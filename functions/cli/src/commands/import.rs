//! `instapipe import FILE.csv [--dry-run]`: bulk scheduling from CSV.
//!
//! Columns (a header row names them; any order; `caption`, `publish_at`, `options` optional):
//! - `caption`: the text (quote it for commas and line breaks)
//! - `media`: space-separated `type:url` items, `image:https://…` or `video:https://…` (2 to 10
//!   make a carousel); or a JSON array of media items as the generic webhook takes them
//! - `accounts`: Instagram account ids, separated by spaces or commas
//! - `publish_at`: RFC 3339; empty or past means now
//! - `options`: a JSON object, the generic webhook's `options`
//!
//! Every row is checked before anything is written, by the generic webhook's own rules
//! ([`generic::parse`]) and against the registered accounts. Bad rows are reported with their
//! line numbers and are not imported; the good ones are scheduled. Each row is remembered under
//! a delivery key (source `csv`, key = SHA-256 of the row's content), so importing the same
//! file again schedules nothing twice.

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Read, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use instapipe_core::intake::{Accepted, Intake, Refusal, Submission};
use instapipe_core::post::{PostRequest, overall_state};
use instapipe_core::sources::generic;
use instapipe_core::sources::mapped::DedupeKey;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{CliError, Ctx, Result, when};

/// The source name of imported posts and their delivery keys.
pub const SOURCE: &str = "csv";
pub const COLUMNS: [&str; 5] = ["caption", "media", "accounts", "publish_at", "options"];
/// How long an imported row is remembered (its delivery item's TTL): re-importing the file
/// within a year schedules nothing twice.
pub const IMPORT_MEMORY_SECS: i64 = 365 * 24 * 3600;

/// A row that passed every check.
#[derive(Clone, Debug, PartialEq)]
pub struct GoodRow {
    /// 1-based line of the file where the row starts (the header is line 1).
    pub line: u64,
    /// The delivery key: SHA-256 (hex) of the row's content.
    pub key: String,
    pub request: PostRequest,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRow {
    pub line: u64,
    pub reason: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parsed {
    pub good: Vec<GoodRow>,
    pub bad: Vec<BadRow>,
    /// Rows with the same content as an earlier row of the file: (line, first line).
    pub repeated: Vec<(u64, u64)>,
}

/// Line numbers as an editor shows them. (The csv crate counts only `\n`, so with CRLF endings
/// every row was one line early, and with CR endings all were "line 1"; and a record's position
/// can be the blank line before it.)
struct Lines {
    /// Byte offset where each line starts; a line ends with `\n`, `\r\n` or a lone `\r`.
    starts: Vec<usize>,
    data_len: usize,
}

impl Lines {
    fn new(data: &[u8]) -> Lines {
        let mut starts = vec![0];
        for (i, &b) in data.iter().enumerate() {
            if b == b'\n' || (b == b'\r' && data.get(i + 1) != Some(&b'\n')) {
                starts.push(i + 1);
            }
        }
        Lines { starts, data_len: data.len() }
    }

    /// The 1-based line of the first byte at or after `offset` that is not a line break: where a
    /// record that the reader began at `offset` really starts.
    fn record_line(&self, data: &[u8], offset: usize) -> u64 {
        let start = data[offset.min(self.data_len)..]
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .map_or(self.data_len, |skip| offset + skip);
        self.starts.partition_point(|&s| s <= start) as u64
    }
}

/// Reads and checks every row (no I/O but the reader). A file-level problem (no header, a
/// missing or unknown column) is an error; a row-level one is a [`BadRow`].
pub fn parse_csv<R: Read>(mut input: R) -> Result<Parsed> {
    let mut data = Vec::new();
    input.read_to_end(&mut data).map_err(|e| CliError(format!("cannot read the CSV file: {e}")))?;
    let lines = Lines::new(&data);
    let line_of = |position: Option<&csv::Position>| position.map_or(0, |p| lines.record_line(&data, p.byte() as usize));
    let mut reader = csv::ReaderBuilder::new().has_headers(true).trim(csv::Trim::Headers).from_reader(data.as_slice());
    let headers = reader.headers().map_err(|e| CliError(format!("cannot read the CSV header: {e}")))?.clone();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, name) in headers.iter().enumerate() {
        let name = name.trim_start_matches('\u{feff}');
        let Some(known) = COLUMNS.iter().find(|c| c.eq_ignore_ascii_case(name)) else {
            return Err(CliError(format!("line 1: unknown column {name:?}; the columns are {}", COLUMNS.join(","))));
        };
        if index.insert(known, i).is_some() {
            return Err(CliError(format!("line 1: column {known} appears twice")));
        }
    }
    for required in ["media", "accounts"] {
        if !index.contains_key(required) {
            return Err(CliError(format!("line 1: the header has no {required} column (columns: {})", COLUMNS.join(","))));
        }
    }
    let mut parsed = Parsed::default();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(err) => {
                let line = line_of(err.position());
                let reason = match err.kind() {
                    csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                        format!("{len} fields where the header has {expected_len}")
                    }
                    _ => err.to_string(),
                };
                parsed.bad.push(BadRow { line, reason });
                continue;
            }
        };
        let line = line_of(record.position());
        let field = |name: &str| index.get(name).and_then(|&i| record.get(i)).unwrap_or("");
        if record.iter().all(|f| f.trim().is_empty()) {
            continue; // a blank line between rows
        }
        match row_request(field) {
            Ok((key, request)) => match seen.get(&key) {
                Some(&first) => parsed.repeated.push((line, first)),
                None => {
                    seen.insert(key.clone(), line);
                    parsed.good.push(GoodRow { line, key, request });
                }
            },
            Err(reason) => parsed.bad.push(BadRow { line, reason }),
        }
    }
    Ok(parsed)
}

/// The row as the generic webhook's JSON body, checked by its parser; and its delivery key.
fn row_request<'a>(field: impl Fn(&str) -> &'a str) -> std::result::Result<(String, PostRequest), String> {
    let mut body = Map::new();
    body.insert("caption".into(), Value::String(field("caption").to_string()));
    body.insert("media".into(), media_column(field("media").trim())?);
    let accounts: Vec<Value> = field("accounts")
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|a| !a.is_empty())
        .map(|a| Value::String(a.to_string()))
        .collect();
    body.insert("accounts".into(), Value::Array(accounts));
    let publish_at = field("publish_at").trim();
    if !publish_at.is_empty() {
        body.insert("publish_at".into(), Value::String(publish_at.to_string()));
    }
    let options = field("options").trim();
    if !options.is_empty() {
        let value: Value = serde_json::from_str(options).map_err(|e| format!("options: not JSON ({e})"))?;
        body.insert("options".into(), value);
    }
    let body = Value::Object(body);
    // serde_json's maps are sorted, so the same content always gives the same bytes.
    let bytes = serde_json::to_vec(&body).expect("a JSON value serializes");
    let request = generic::parse(&bytes).map_err(|e| match e.field {
        Some(field) => format!("{field}: {}", e.message),
        None => e.message,
    })?;
    let key = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    Ok((key, request))
}

/// `image:https://a.jpg video:https://b.mp4`, or a JSON array of media items.
fn media_column(text: &str) -> std::result::Result<Value, String> {
    if text.starts_with('[') {
        return serde_json::from_str(text).map_err(|e| format!("media: not a JSON array ({e})"));
    }
    let items = text
        .split_whitespace()
        .enumerate()
        .map(|(i, item)| match item.split_once(':') {
            Some((kind @ ("image" | "video"), url)) => Ok(json!({ "type": kind, "url": url })),
            _ => Err(format!("media[{i}]: {item:?} is not image:URL or video:URL")),
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Value::Array(items))
}

/// Whether to draw the progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// On stderr, when stdout is a terminal.
    Auto,
    Hidden,
}

#[derive(Clone, Copy, Debug)]
pub struct ImportOptions {
    pub dry_run: bool,
    pub progress: Progress,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImportReport {
    /// (line, post id) of every post made now (with `--dry-run`: none).
    pub scheduled: Vec<(u64, String)>,
    /// (line, post id) of rows imported before.
    pub already: Vec<(u64, String)>,
    /// With `--dry-run`: the lines that would be scheduled.
    pub would_schedule: Vec<u64>,
    pub bad: Vec<BadRow>,
    /// (line, first line) of rows with the same content as an earlier row (imported once).
    pub repeated: Vec<(u64, u64)>,
}

fn progress_bar(len: usize, progress: Progress) -> ProgressBar {
    let shown = progress == Progress::Auto && std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
    let target = if shown { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    let bar = ProgressBar::with_draw_target(Some(len as u64), target);
    if let Ok(style) = ProgressStyle::with_template("{msg:10} [{bar:40}] {pos}/{len} rows ({eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Checks every row first (including that each account is registered), reports the bad ones,
/// then schedules the good ones (unless `dry_run`).
pub async fn import<R: Read>(ctx: &Ctx, input: R, options: ImportOptions, out: &mut dyn Write) -> Result<ImportReport> {
    let parsed = parse_csv(input)?;
    let store = ctx.store();
    let total = parsed.good.len() + parsed.bad.len() + parsed.repeated.len();
    let bar = progress_bar(parsed.good.len() * 2, options.progress);

    // 1. Every account named must be registered, as for the generic webhook (the intake
    // remembers each account it read, so step 2 reads none again).
    bar.set_message("checking");
    let mut intake = Intake::new(store.as_ref());
    let mut good = Vec::new();
    let mut bad = parsed.bad;
    for row in parsed.good {
        match intake.unknown_account(&row.request).await? {
            Some(unknown) => bad.push(BadRow { line: row.line, reason: unknown.to_string() }),
            None => good.push(row),
        }
        bar.inc(1);
    }
    bad.sort_by_key(|b| b.line);
    let mut report = ImportReport { bad, repeated: parsed.repeated.clone(), ..ImportReport::default() };
    for b in &report.bad {
        bar.suspend(|| writeln!(out, "line {}: {}", b.line, b.reason))?;
    }
    for (line, first) in &parsed.repeated {
        bar.suspend(|| writeln!(out, "line {line}: same content as line {first}; imported once"))?;
    }

    // 2. Write the good rows, each with its delivery key (a row imported before is skipped).
    bar.set_message(if options.dry_run { "dry run" } else { "scheduling" });
    let mut written: HashSet<String> = HashSet::new();
    for row in good {
        if let Some(post_id) = store.delivered_post(SOURCE, &row.key).await? {
            bar.suspend(|| writeln!(out, "line {}: imported before as post {post_id}", row.line))?;
            report.already.push((row.line, post_id));
        } else if options.dry_run {
            let at = row.request.publish_at.map_or_else(|| "now".to_string(), when);
            bar.suspend(|| writeln!(out, "line {}: would schedule for {} at {at}", row.line, row.request.accounts.join(" ")))?;
            report.would_schedule.push(row.line);
        } else {
            let now = OffsetDateTime::now_utc();
            let submission =
                Submission { memory_secs: IMPORT_MEMORY_SECS, ..Submission::new(DedupeKey::new(SOURCE, &row.key), row.request) };
            match intake.accept(submission, now).await {
                Ok(Accepted::Posted { post, destinations }) => {
                    let at = post.publish_at.filter(|at| *at > now).map_or_else(|| "now".to_string(), when);
                    let state = overall_state(&destinations).as_str();
                    bar.suspend(|| writeln!(out, "line {}: post {} {state} ({at})", row.line, post.post_id))?;
                    written.insert(post.post_id.clone());
                    report.scheduled.push((row.line, post.post_id));
                }
                Ok(Accepted::Duplicate { post_id }) => {
                    bar.suspend(|| writeln!(out, "line {}: imported before as post {post_id}", row.line))?;
                    report.already.push((row.line, post_id));
                }
                Err(Refusal::Store(err)) => return Err(err.into()),
                // Not expected: every row was checked in step 1.
                Ok(Accepted::Skipped { reason }) => return Err(CliError(format!("line {}: {reason}", row.line))),
                Err(refusal) => return Err(CliError(format!("line {}: {refusal}", row.line))),
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let verb = if options.dry_run { "would be scheduled" } else { "scheduled" };
    let count = if options.dry_run { report.would_schedule.len() } else { report.scheduled.len() };
    writeln!(
        out,
        "{total} rows: {count} {verb}, {} imported before, {} repeated in the file, {} bad{}",
        report.already.len(),
        parsed.repeated.len(),
        report.bad.len(),
        if options.dry_run { " (dry run: nothing written)" } else { "" },
    )?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Parsed {
        parse_csv(text.as_bytes()).unwrap()
    }

    const HEADER: &str = "caption,media,accounts,publish_at,options\n";

    #[test]
    fn good_and_bad_rows_are_told_apart_with_their_line_numbers() {
        let csv = format!(
            "{HEADER}\
             Autumn coat,image:https://cdn.example.com/a.jpg,17841400000000001,2030-01-01T09:00:00Z,\n\
             \"Two lines,\nwith a comma\",image:https://cdn.example.com/b.jpg video:https://cdn.example.com/c.mp4,\"17841400000000001 17841400000000002\",,\"{{\"\"first_comment\"\":\"\"#more\"\"}}\"\n\
             Plain http,image:http://cdn.example.com/a.jpg,17841400000000001,,\n\
             No type,https://cdn.example.com/a.jpg,17841400000000001,,\n\
             Bad time,image:https://cdn.example.com/a.jpg,17841400000000001,tomorrow,\n\
             Bad account,image:https://cdn.example.com/a.jpg,12ab,,\n\
             Too few fields,image:https://cdn.example.com/a.jpg\n\
             Bad options,image:https://cdn.example.com/a.jpg,17841400000000001,,{{nope\n"
        );
        let parsed = parse(&csv);
        let lines: Vec<u64> = parsed.good.iter().map(|g| g.line).collect();
        assert_eq!(lines, [2, 3], "{parsed:#?}");
        assert_eq!(parsed.good[1].request.media.len(), 2);
        assert_eq!(parsed.good[1].request.accounts.len(), 2);
        assert_eq!(parsed.good[1].request.caption, "Two lines,\nwith a comma");
        assert_eq!(parsed.good[1].request.options.first_comment.as_deref(), Some("#more"));
        assert!(parsed.good[0].request.publish_at.is_some());
        let bad: Vec<(u64, &str)> = parsed.bad.iter().map(|b| (b.line, b.reason.as_str())).collect();
        assert_eq!(bad.iter().map(|b| b.0).collect::<Vec<_>>(), [5, 6, 7, 8, 9, 10], "{bad:#?}");
        assert!(bad[0].1.starts_with("media[0].url:"), "{}", bad[0].1);
        assert!(bad[1].1.contains("not image:URL or video:URL"), "{}", bad[1].1);
        assert!(bad[2].1.starts_with("publish_at:"), "{}", bad[2].1);
        assert!(bad[3].1.starts_with("accounts[0]:"), "{}", bad[3].1);
        assert!(bad[4].1.contains("2 fields where the header has 5"), "{}", bad[4].1);
        assert!(bad[5].1.starts_with("options: not JSON"), "{}", bad[5].1);
    }

    #[test]
    fn the_same_content_gives_the_same_key_and_is_imported_once() {
        let row = "Hi,image:https://cdn.example.com/a.jpg,17841400000000001,,\n";
        let spaced = "Hi,  image:https://cdn.example.com/a.jpg ,\"17841400000000001\",,\n";
        let parsed = parse(&format!("{HEADER}{row}{spaced}"));
        assert_eq!(parsed.good.len(), 1);
        assert_eq!(parsed.repeated, [(3, 2)]);
        assert_eq!(parsed.good[0].key.len(), 64);
        let other = parse(&format!("{HEADER}Hello,image:https://cdn.example.com/a.jpg,17841400000000001,,\n"));
        assert_ne!(other.good[0].key, parsed.good[0].key);
    }

    #[test]
    fn columns_may_be_reordered_or_left_out_but_not_misspelt() {
        let parsed = parse("accounts,media\n17841400000000001,\"[{\"\"type\"\":\"\"image\"\",\"\"url\"\":\"\"https://x.example/a.jpg\"\",\"\"alt_text\"\":\"\"a coat\"\"}]\"\n");
        assert_eq!(parsed.good.len(), 1, "{parsed:#?}");
        assert_eq!(parsed.good[0].request.media[0].alt_text.as_deref(), Some("a coat"));
        assert!(parse_csv("caption,media\nx,image:https://x.example/a.jpg\n".as_bytes()).unwrap_err().0.contains("no accounts column"));
        assert!(parse_csv("caption,medias,accounts\n".as_bytes()).unwrap_err().0.contains("unknown column \"medias\""));
    }

    /// Lines 1-9 as an editor shows them: header; good; bad; blank; a good row over lines 5-7;
    /// a row with too few fields; good.
    const NUMBERED: &str = "caption,media,accounts,publish_at,options\n\
        First,image:https://cdn.example.com/a.jpg,17841400000000001,,\n\
        Plain http,image:http://cdn.example.com/a.jpg,17841400000000001,,\n\
        \n\
        \"Three\nline\ncaption\",image:https://cdn.example.com/b.jpg,17841400000000001,,\n\
        Too few,image:https://cdn.example.com/a.jpg\n\
        Last,image:https://cdn.example.com/c.jpg,17841400000000001,,\n";

    /// (good lines, bad lines) of [`NUMBERED`] with `ending` for every line break.
    fn numbered_lines(ending: &str, bom: bool) -> (Vec<u64>, Vec<u64>, Parsed) {
        let text = format!("{}{}", if bom { "\u{feff}" } else { "" }, NUMBERED.replace('\n', ending));
        let parsed = parse(&text);
        (parsed.good.iter().map(|g| g.line).collect(), parsed.bad.iter().map(|b| b.line).collect(), parsed)
    }

    #[test]
    fn line_numbers_with_lf_endings() {
        let (good, bad, parsed) = numbered_lines("\n", false);
        assert_eq!((good, bad), (vec![2, 5, 9], vec![3, 8]), "{parsed:#?}");
    }

    #[test]
    fn line_numbers_with_crlf_endings_match_the_editor() {
        let (good, bad, parsed) = numbered_lines("\r\n", false);
        assert_eq!((good, bad), (vec![2, 5, 9], vec![3, 8]), "{parsed:#?}");
        assert!(parsed.bad[0].reason.starts_with("media[0].url:"), "line 3 is the plain-http row: {:?}", parsed.bad[0]);
        assert!(parsed.bad[1].reason.contains("2 fields"), "line 8 is the short row: {:?}", parsed.bad[1]);
        // A spreadsheet's export: a byte order mark and CRLF.
        let (good, bad, _) = numbered_lines("\r\n", true);
        assert_eq!((good, bad), (vec![2, 5, 9], vec![3, 8]));
    }

    #[test]
    fn line_numbers_with_cr_endings() {
        let (good, bad, parsed) = numbered_lines("\r", false);
        assert_eq!((good, bad), (vec![2, 5, 9], vec![3, 8]), "{parsed:#?}");
    }

    #[test]
    fn a_record_over_several_lines_is_numbered_by_the_line_it_starts_on() {
        for ending in ["\n", "\r\n", "\r"] {
            let (_, _, parsed) = numbered_lines(ending, false);
            let three = &parsed.good[1];
            assert_eq!(three.line, 5, "{ending:?}");
            assert_eq!(three.request.caption, ["Three", "line", "caption"].join(ending), "{ending:?}");
            // The rows after it are numbered by their own lines, not shifted by its line breaks.
            assert_eq!((parsed.bad[1].line, parsed.good[2].line), (8, 9), "{ending:?}");
        }
        // Two multi-line records in a row, the second starting right after the first ends.
        let text = "caption,media,accounts\r\n\"a\r\nb\",image:https://x.example/1.jpg,17841400000000001\r\n\"c\r\n\r\nd\",image:https://x.example/2.jpg,17841400000000001\r\n";
        let lines: Vec<u64> = parse(text).good.iter().map(|g| g.line).collect();
        assert_eq!(lines, [2, 4]);
    }

    #[test]
    fn blank_lines_are_skipped_and_an_empty_media_list_is_bad() {
        let parsed = parse(&format!("{HEADER}\n,,,,\nNo media,,17841400000000001,,\n"));
        assert!(parsed.good.is_empty());
        assert_eq!(parsed.bad.len(), 1);
        assert_eq!(parsed.bad[0].line, 4);
        assert!(parsed.bad[0].reason.starts_with("media:"), "{}", parsed.bad[0].reason);
    }
}
