//! Binance combined-stream `@trade` and `@bookTicker` frames of `<recv_ns> <json>` recordings,
//! decoded into columns.
//!
//! The reference is the Python path (`marketpipe.sources.replay` with the typed parser
//! `marketpipe.sources.binance.frames.parse_frame`). A line is decoded here only when it is
//! certainly a valid frame the Python parser would turn into the same record; every other
//! line is handed back whole ("rest"), and Python decides about it: a record, a skip or a dead
//! letter. Symbols are handed over as the venue spells them; Python normalizes them.

use std::collections::HashMap;

use crate::json::{decimal, int_in, Scalar, Scanner};

/// Trade ids are stored as int64; trade times (ms) must fit int64 as µs.
const MAX_TRADE_ID: i64 = i64::MAX;
const MAX_TIME_MS: i64 = i64::MAX / 1000;
const BOM: &[u8] = b"\xef\xbb\xbf";

/// Where a decoded line sits in the block, and its number in the file.
#[derive(Default)]
pub struct Origin {
    pub no: Vec<i64>,
    pub start: Vec<i64>,
    pub end: Vec<i64>,
}

impl Origin {
    fn push(&mut self, no: i64, start: usize, end: usize) {
        self.no.push(no);
        self.start.push(start as i64);
        self.end.push(end as i64);
    }
}

#[derive(Default)]
pub struct Trades {
    pub symbol: Vec<i32>, // index into `Decoded::symbols`
    pub trade_id: Vec<i64>,
    pub price: Vec<f64>,
    pub qty: Vec<f64>,
    pub sell: Vec<bool>,
    pub ts_event: Vec<i64>, // µs
    pub ts_recv: Vec<i64>,  // µs
    pub origin: Origin,
}

impl Trades {
    fn reserve(&mut self, rows: usize) {
        self.symbol.reserve(rows);
        self.trade_id.reserve(rows);
        self.price.reserve(rows);
        self.qty.reserve(rows);
        self.sell.reserve(rows);
        self.ts_event.reserve(rows);
        self.ts_recv.reserve(rows);
        self.origin.no.reserve(rows);
        self.origin.start.reserve(rows);
        self.origin.end.reserve(rows);
    }
}

#[derive(Default)]
pub struct Quotes {
    pub symbol: Vec<i32>,
    pub bid: Vec<f64>,
    pub bid_qty: Vec<f64>,
    pub ask: Vec<f64>,
    pub ask_qty: Vec<f64>,
    pub ts: Vec<i64>, // µs: spot bookTicker has no event time, receipt is both
    /// The stream name when the line starts `<digits> {"stream":"NAME"`, the spelling the
    /// Python path groups quotes by (it keeps the last quote per stream and block).
    pub stream: Vec<Option<(usize, usize)>>,
    pub origin: Origin,
}

#[derive(Default)]
pub struct Rest {
    pub no: Vec<i64>,
    /// The line's bytes, start and end in the block (after the `\r` of a `\r\n`).
    pub span: Vec<(usize, usize)>,
}

#[derive(Default)]
pub struct Decoded {
    pub symbols: Vec<String>,
    symbol_index: HashMap<Vec<u8>, i32>,
    pub trades: Trades,
    pub quotes: Quotes,
    pub rest: Rest,
}

impl Decoded {
    fn symbol(&mut self, native: &[u8]) -> i32 {
        if let Some(&index) = self.symbol_index.get(native) {
            return index;
        }
        // `native` was checked to be UTF-8 with the whole line.
        let text = String::from_utf8_lossy(native).into_owned();
        let index = self.symbols.len() as i32;
        self.symbols.push(text);
        self.symbol_index.insert(native.to_vec(), index);
        index
    }
}

/// The data fields either payload may use; others are ignored, as the typed parser does.
#[derive(Default)]
struct Fields<'a> {
    s: Option<Scalar<'a>>,
    t: Option<Scalar<'a>>,
    p: Option<Scalar<'a>>,
    q: Option<Scalar<'a>>,
    time: Option<Scalar<'a>>, // "T"
    m: Option<Scalar<'a>>,
    e: Option<Scalar<'a>>,
    event_time: Option<Scalar<'a>>, // "E"
    b: Option<Scalar<'a>>,
    bid_qty: Option<Scalar<'a>>, // "B"
    a: Option<Scalar<'a>>,
    ask_qty: Option<Scalar<'a>>, // "A"
    u: Option<Scalar<'a>>,
}

impl<'a> Fields<'a> {
    fn slot(&mut self, key: &[u8]) -> Option<&mut Option<Scalar<'a>>> {
        Some(match key {
            b"s" => &mut self.s,
            b"t" => &mut self.t,
            b"p" => &mut self.p,
            b"q" => &mut self.q,
            b"T" => &mut self.time,
            b"m" => &mut self.m,
            b"e" => &mut self.e,
            b"E" => &mut self.event_time,
            b"b" => &mut self.b,
            b"B" => &mut self.bid_qty,
            b"a" => &mut self.a,
            b"A" => &mut self.ask_qty,
            b"u" => &mut self.u,
            _ => return None,
        })
    }
}

/// The `data` object: known fields kept, unknown keys' scalar values skipped, each key once.
fn data_object<'a>(scan: &mut Scanner<'a>) -> Option<Fields<'a>> {
    let mut fields = Fields::default();
    // Unknown keys seen, to refuse a duplicate; a frame with many is the parser's.
    let mut unknown: [&'a [u8]; 8] = [b""; 8];
    let mut unknowns = 0;
    if !scan.eat(b'{') {
        return None;
    }
    if scan.eat(b'}') {
        return Some(fields);
    }
    loop {
        scan.skip_ws();
        let key = scan.string()?;
        if !scan.eat(b':') {
            return None;
        }
        let value = scan.scalar()?;
        match fields.slot(key) {
            Some(slot) => {
                if slot.replace(value).is_some() {
                    return None; // a duplicate key: the Python decoder keeps the last one
                }
            }
            None => {
                if unknowns == unknown.len() || unknown[..unknowns].contains(&key) {
                    return None;
                }
                unknown[unknowns] = key;
                unknowns += 1;
            }
        }
        if scan.eat(b',') {
            continue;
        }
        if scan.eat(b'}') {
            return Some(fields);
        }
        return None;
    }
}

enum Frame<'a> {
    Trade {
        symbol: &'a [u8],
        trade_id: i64,
        price: f64,
        qty: f64,
        sell: bool,
        time_ms: i64,
    },
    Quote {
        symbol: &'a [u8],
        bid: f64,
        bid_qty: f64,
        ask: f64,
        ask_qty: f64,
    },
}

fn positive(value: Option<Scalar<'_>>) -> Option<f64> {
    match value? {
        Scalar::Str(text) => decimal(text).filter(|v| v.is_finite() && *v > 0.0),
        _ => None,
    }
}

fn finite(value: Option<Scalar<'_>>) -> Option<f64> {
    match value? {
        Scalar::Str(text) => decimal(text).filter(|v| v.is_finite()),
        _ => None,
    }
}

fn string(value: Option<Scalar<'_>>) -> Option<&[u8]> {
    match value? {
        Scalar::Str(text) => Some(text),
        _ => None,
    }
}

fn int(value: Option<Scalar<'_>>, min: i64, max: i64) -> Option<i64> {
    match value? {
        Scalar::Int(literal) => int_in(literal, min, max),
        _ => None,
    }
}

/// An optional field: absent, or of the type the payload declares (any integer size is fine).
fn optional_int(value: Option<Scalar<'_>>) -> bool {
    matches!(value, None | Some(Scalar::Int(_)))
}

fn optional_str(value: Option<Scalar<'_>>) -> bool {
    matches!(value, None | Some(Scalar::Str(_)))
}

fn trade<'a>(f: &Fields<'a>) -> Option<Frame<'a>> {
    if !optional_str(f.e) || !optional_int(f.event_time) {
        return None;
    }
    let sell = match f.m? {
        Scalar::Bool(value) => value,
        _ => return None,
    };
    Some(Frame::Trade {
        symbol: string(f.s)?,
        trade_id: int(f.t, 0, MAX_TRADE_ID)?,
        price: positive(f.p)?,
        qty: positive(f.q)?,
        sell,
        time_ms: int(f.time, 1, MAX_TIME_MS)?,
    })
}

fn quote<'a>(f: &Fields<'a>) -> Option<Frame<'a>> {
    if !optional_int(f.u) {
        return None;
    }
    Some(Frame::Quote {
        symbol: string(f.s)?,
        bid: positive(f.b)?,
        bid_qty: finite(f.bid_qty)?,
        ask: positive(f.a)?,
        ask_qty: finite(f.ask_qty)?,
    })
}

/// `recv_ns` of `<digits> ` at the start of a line, as the Python path bounds it (int64).
fn recv_ns(line: &[u8]) -> Option<(i64, usize)> {
    let space = line.iter().position(|&b| b == b' ')?;
    let digits = &line[..space];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let significant = digits
        .iter()
        .position(|&b| b != b'0')
        .map_or(&digits[..0], |i| &digits[i..]);
    let value = if significant.is_empty() {
        0
    } else {
        int_in(significant, 0, i64::MAX)?
    };
    Some((value, space + 1))
}

/// The stream name of a line that starts `<digits> {"stream":"NAME"` exactly, as the Python
/// path's classifying pattern reads it; `None` when the line does not start so.
fn stream_prefix(line: &[u8], json_start: usize) -> Option<(usize, usize)> {
    const PREFIX: &[u8] = b"{\"stream\":\"";
    if !line[json_start..].starts_with(PREFIX) {
        return None;
    }
    let start = json_start + PREFIX.len();
    let len = line[start..].iter().position(|&b| b == b'"')?;
    (len > 0).then_some((start, start + len))
}

/// One whole frame: `{"stream": "<x>@trade" | "<x>@bookTicker", "data": {...}}` in either key
/// order, nothing else at the top level.
fn frame(json: &[u8]) -> Option<Frame<'_>> {
    let mut scan = Scanner::new(json);
    if !scan.eat(b'{') {
        return None;
    }
    let mut stream: Option<&[u8]> = None;
    let mut data: Option<Fields<'_>> = None;
    loop {
        scan.skip_ws();
        let key = scan.string()?;
        if !scan.eat(b':') {
            return None;
        }
        match key {
            b"stream" if stream.is_none() => {
                scan.skip_ws();
                stream = Some(scan.string()?);
            }
            b"data" if data.is_none() => {
                scan.skip_ws();
                data = Some(data_object(&mut scan)?);
            }
            _ => return None, // another key, or a duplicate: the Python parser decides
        }
        if scan.eat(b',') {
            continue;
        }
        if scan.eat(b'}') {
            break;
        }
        return None;
    }
    if !scan.at_end() {
        return None;
    }
    let (stream, data) = (stream?, data?);
    // The Python parser's kind is what follows the first `@`.
    let at = stream.iter().position(|&b| b == b'@')?;
    match &stream[at + 1..] {
        b"trade" => trade(&data),
        b"bookTicker" => quote(&data),
        _ => None,
    }
}

/// Lines of a block as the Python path splits them: on `\n`, one trailing `\r` dropped, empty
/// lines skipped but counted. Polars' reader drops a UTF-8 byte-order mark at the block's start
/// (it splits the block unless it holds a 0x1f byte, which a frame never does).
pub fn decode_block(block: &[u8], first_line: i64) -> Decoded {
    let mut out = Decoded::default();
    // A trade frame is about 190 bytes: reserve once instead of growing (and copying) often.
    out.trades.reserve(block.len() / 160);
    let mut pos = 0;
    if block.starts_with(BOM) && !block.contains(&0x1f) {
        pos = BOM.len();
    }
    let mut no = first_line;
    while pos < block.len() {
        let end = memchr::memchr(b'\n', &block[pos..]).map_or(block.len(), |i| pos + i);
        let mut stop = end;
        if stop > pos && block[stop - 1] == b'\r' {
            stop -= 1;
        }
        if stop > pos {
            decode_line(&mut out, block, pos, stop, no);
        }
        pos = end + 1;
        no += 1;
    }
    out
}

fn decode_line(out: &mut Decoded, block: &[u8], start: usize, stop: usize, no: i64) {
    let line = &block[start..stop];
    let decoded = (|| {
        let (recv, json_start) = recv_ns(line)?;
        if !line.is_ascii() {
            std::str::from_utf8(line).ok()?;
        }
        let frame = frame(&line[json_start..])?;
        Some((recv, json_start, frame))
    })();
    let Some((recv, json_start, frame)) = decoded else {
        out.rest.no.push(no);
        out.rest.span.push((start, stop));
        return;
    };
    let recv_us = recv / 1000;
    match frame {
        Frame::Trade {
            symbol,
            trade_id,
            price,
            qty,
            sell,
            time_ms,
        } => {
            let symbol = out.symbol(symbol);
            let t = &mut out.trades;
            t.symbol.push(symbol);
            t.trade_id.push(trade_id);
            t.price.push(price);
            t.qty.push(qty);
            t.sell.push(sell);
            t.ts_event.push(time_ms * 1000);
            t.ts_recv.push(recv_us);
            t.origin.push(no, start, stop);
        }
        Frame::Quote {
            symbol,
            bid,
            bid_qty,
            ask,
            ask_qty,
        } => {
            let symbol = out.symbol(symbol);
            let stream = stream_prefix(line, json_start).map(|(a, b)| (start + a, start + b));
            let q = &mut out.quotes;
            q.symbol.push(symbol);
            q.bid.push(bid);
            q.bid_qty.push(bid_qty);
            q.ask.push(ask);
            q.ask_qty.push(ask_qty);
            q.ts.push(recv_us);
            q.stream.push(stream);
            q.origin.push(no, start, stop);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRADE: &str = r#"1723161600123456789 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161600123,"s":"BTCUSDT","t":42,"p":"61000.50","q":"0.001","T":1723161600120,"m":true,"M":true}}"#;

    #[test]
    fn a_canonical_trade_is_decoded() {
        let out = decode_block(TRADE.as_bytes(), 7);
        assert_eq!(out.symbols, vec!["BTCUSDT".to_string()]);
        let t = &out.trades;
        assert_eq!(t.trade_id, vec![42]);
        assert_eq!(t.price, vec![61000.5]);
        assert_eq!(t.qty, vec![0.001]);
        assert_eq!(t.sell, vec![true]);
        assert_eq!(t.ts_event, vec![1_723_161_600_120_000]);
        assert_eq!(t.ts_recv, vec![1_723_161_600_123_456]);
        assert_eq!(t.origin.no, vec![7]);
        assert!(out.rest.no.is_empty());
    }

    #[test]
    fn key_order_and_whitespace_do_not_matter() {
        let line = r#"5 { "data" : {"m":false,"T":2,"q":"1e-3","p":"2","t":0,"s":"ETHUSDT"} , "stream":"ethusdt@trade" } "#;
        let out = decode_block(line.as_bytes(), 1);
        assert_eq!(out.trades.trade_id, vec![0]);
        assert_eq!(out.trades.qty, vec![0.001]);
        assert_eq!(out.trades.sell, vec![false]);
    }

    #[test]
    fn lines_numbered_with_empty_ones_and_crlf() {
        let block = format!("\n{TRADE}\r\n\r\n{TRADE}");
        let out = decode_block(block.as_bytes(), 10);
        assert_eq!(out.trades.origin.no, vec![11, 13]);
        assert_eq!(out.trades.origin.end[0] as usize, 1 + TRADE.len());
    }

    #[test]
    fn doubtful_lines_are_handed_back() {
        let cases = [
            TRADE.replace("61000.50", "0.00000000"), // not positive
            TRADE.replace("\"t\":42", "\"t\":-1"),   // negative id
            TRADE.replace("\"t\":42", "\"t\":9223372036854775808"),
            TRADE.replace("\"T\":1723161600120", "\"T\":0"), // time must be positive
            TRADE.replace("\"T\":1723161600120", "\"T\":9223372036854776"),
            TRADE.replace("BTCUSDT", "BTC\\u0055SDT"), // an escape
            TRADE.replace("\"m\":true", "\"m\":1"),
            TRADE.replace("\"M\":true", "\"M\":[1]"), // a nested unknown value
            TRADE.replace("\"t\":42", "\"t\":42,\"t\":43"), // duplicate key
            TRADE.replace("@trade", "@depth"),
            TRADE.replace("1723161600123456789", "9223372036854775808"),
            TRADE.replace("}}", "}} x"),
            TRADE.replace("\"E\":1723161600123", "\"E\":1.5"),
        ];
        for case in &cases {
            let out = decode_block(case.as_bytes(), 1);
            assert!(out.trades.trade_id.is_empty(), "{case}");
            assert_eq!(out.rest.no, vec![1], "{case}");
        }
    }

    #[test]
    fn int64_limits_are_taken_exactly() {
        let line = TRADE
            .replace("\"t\":42", "\"t\":9223372036854775807")
            .replace("\"T\":1723161600120", "\"T\":9223372036854775")
            .replace("1723161600123456789", "9223372036854775807");
        let out = decode_block(line.as_bytes(), 1);
        assert_eq!(out.trades.trade_id, vec![i64::MAX]);
        assert_eq!(out.trades.ts_event, vec![9_223_372_036_854_775_000]);
        assert_eq!(out.trades.ts_recv, vec![i64::MAX / 1000]);
    }

    #[test]
    fn a_book_ticker_is_decoded_with_its_stream() {
        let line = r#"2000 {"stream":"btcusdt@bookTicker","data":{"u":400900217,"s":"BTCUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}}"#;
        let out = decode_block(line.as_bytes(), 1);
        let q = &out.quotes;
        assert_eq!(q.bid, vec![25.3519]);
        assert_eq!(q.ask_qty, vec![40.66]);
        assert_eq!(q.ts, vec![2]);
        let (a, b) = q.stream[0].unwrap();
        assert_eq!(&line[a..b], "btcusdt@bookTicker");
    }
}
