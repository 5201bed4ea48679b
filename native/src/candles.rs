//! The candle fold: trades into partial candles per (exchange, symbol, window), and rollups of
//! partial candles into longer windows (the candle monoid).
//!
//! The reference is the Python path (`marketpipe.processing.candles`: `partial_candles` and
//! `rollup_partials`). Open and close are the first and last trade ordered by
//! `(ts_event, trade_id)`; groups come out ordered by their first trade in that order, as
//! Polars' sort + `group_by(maintain_order=True)` has them, so the engine opens windows and
//! emits candles in the same order on both paths.
//!
//! Sums (volume, quote volume, taker volumes) are sequential, in `(ts_event, trade_id)` order
//! within a window (arrival order breaks exact ties), so the fold of a batch does not depend
//! on the order its trades arrived in. Polars sums pairwise, so its sums can differ from these
//! in the last bits (docs/native.md).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, LargeStringArray, RecordBatch, StringArray,
    StringViewArray, TimestampMicrosecondArray,
};
use arrow_schema::{ArrowError, DataType, TimeUnit};

/// The partial-candle columns after `exchange, symbol, open_time`, as `PARTIAL_COLUMNS` of
/// `marketpipe.processing.candles`.
pub const PARTIAL_COLUMNS: [&str; 13] = [
    "open",
    "open_ts",
    "open_id",
    "close",
    "close_ts",
    "close_id",
    "high",
    "low",
    "volume",
    "quote_volume",
    "trade_count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
];

/// FxHash (rustc's hasher): the keys are small and not attacker-chosen, and SipHash would
/// cost more than the fold itself.
#[derive(Default)]
struct Fx(u64);

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// Trades as plain columns; `pair` points into `pairs` (exchange, symbol).
#[derive(Default, Debug)]
pub struct Trades {
    pub pairs: Vec<(String, String)>,
    pub pair: Vec<u32>,
    pub trade_id: Vec<i64>,
    pub ts_event: Vec<i64>, // µs
    pub price: Vec<f64>,
    pub qty: Vec<f64>,
    pub buy: Vec<bool>, // side == "buy": the taker bought
}

/// Partial candles, one row per (pair, open_time).
#[derive(Default, Debug, Clone, PartialEq)]
pub struct Partials {
    pub pairs: Vec<(String, String)>,
    pub pair: Vec<u32>,
    pub open_time: Vec<i64>,
    pub open: Vec<f64>,
    pub open_ts: Vec<i64>,
    pub open_id: Vec<i64>,
    pub close: Vec<f64>,
    pub close_ts: Vec<i64>,
    pub close_id: Vec<i64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub volume: Vec<f64>,
    pub quote_volume: Vec<f64>,
    pub trade_count: Vec<i64>,
    pub taker_buy_volume: Vec<f64>,
    pub taker_buy_quote_volume: Vec<f64>,
}

impl Partials {
    fn with_capacity(pairs: Vec<(String, String)>, rows: usize) -> Self {
        Partials {
            pairs,
            pair: Vec::with_capacity(rows),
            open_time: Vec::with_capacity(rows),
            open: Vec::with_capacity(rows),
            open_ts: Vec::with_capacity(rows),
            open_id: Vec::with_capacity(rows),
            close: Vec::with_capacity(rows),
            close_ts: Vec::with_capacity(rows),
            close_id: Vec::with_capacity(rows),
            high: Vec::with_capacity(rows),
            low: Vec::with_capacity(rows),
            volume: Vec::with_capacity(rows),
            quote_volume: Vec::with_capacity(rows),
            trade_count: Vec::with_capacity(rows),
            taker_buy_volume: Vec::with_capacity(rows),
            taker_buy_quote_volume: Vec::with_capacity(rows),
        }
    }

    pub fn len(&self) -> usize {
        self.pair.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pair.is_empty()
    }

    /// Append row `i` of `other` (same `pairs`).
    fn push_row(&mut self, other: &Partials, i: usize, open_time: i64) {
        self.pair.push(other.pair[i]);
        self.open_time.push(open_time);
        self.open.push(other.open[i]);
        self.open_ts.push(other.open_ts[i]);
        self.open_id.push(other.open_id[i]);
        self.close.push(other.close[i]);
        self.close_ts.push(other.close_ts[i]);
        self.close_id.push(other.close_id[i]);
        self.high.push(other.high[i]);
        self.low.push(other.low[i]);
        self.volume.push(other.volume[i]);
        self.quote_volume.push(other.quote_volume[i]);
        self.trade_count.push(other.trade_count[i]);
        self.taker_buy_volume.push(other.taker_buy_volume[i]);
        self.taker_buy_quote_volume
            .push(other.taker_buy_quote_volume[i]);
    }

    /// Merge row `i` of `other` into row `g` (the monoid, as `CandleAcc.merge`).
    fn merge_row(&mut self, g: usize, other: &Partials, i: usize) {
        if (other.open_ts[i], other.open_id[i]) < (self.open_ts[g], self.open_id[g]) {
            self.open[g] = other.open[i];
            self.open_ts[g] = other.open_ts[i];
            self.open_id[g] = other.open_id[i];
        }
        if (other.close_ts[i], other.close_id[i]) > (self.close_ts[g], self.close_id[g]) {
            self.close[g] = other.close[i];
            self.close_ts[g] = other.close_ts[i];
            self.close_id[g] = other.close_id[i];
        }
        self.high[g] = self.high[g].max(other.high[i]);
        self.low[g] = self.low[g].min(other.low[i]);
        self.volume[g] += other.volume[i];
        self.quote_volume[g] += other.quote_volume[i];
        self.trade_count[g] += other.trade_count[i];
        self.taker_buy_volume[g] += other.taker_buy_volume[i];
        self.taker_buy_quote_volume[g] += other.taker_buy_quote_volume[i];
    }
}

/// Start of the window of `length` µs holding `ts` (floored, as Python's and Polars' `%`).
fn window_start(ts: i64, length: i64) -> i64 {
    ts - ts.rem_euclid(length)
}

/// One window's running fold. Rows `first` and `last` are its open and close trades.
struct Acc {
    pair: u32,
    open_time: i64,
    first: usize,
    last: usize,
    in_order: bool, // its trades arrived in (ts_event, trade_id) order
    high: f64,
    low: f64,
    volume: f64,
    quote_volume: f64,
    trade_count: i64,
    taker_buy_volume: f64,
    taker_buy_quote_volume: f64,
}

impl Acc {
    fn new(pair: u32, open_time: i64, row: usize) -> Self {
        Acc {
            pair,
            open_time,
            first: row,
            last: row,
            in_order: true,
            high: f64::NEG_INFINITY,
            low: f64::INFINITY,
            volume: 0.0,
            quote_volume: 0.0,
            trade_count: 0,
            taker_buy_volume: 0.0,
            taker_buy_quote_volume: 0.0,
        }
    }

    /// Fold in trade `r`, the next one in (ts_event, trade_id) order.
    fn add(&mut self, trades: &Trades, r: usize) {
        let (p, q) = (trades.price[r], trades.qty[r]);
        self.last = r;
        self.high = self.high.max(p);
        self.low = self.low.min(p);
        let notional = p * q;
        self.volume += q;
        self.quote_volume += notional;
        self.trade_count += 1;
        if trades.buy[r] {
            self.taker_buy_volume += q;
            self.taker_buy_quote_volume += notional;
        }
    }
}

/// Trades into partial candles of windows of `length` µs.
///
/// One pass in arrival order folds every window whose trades arrive in (ts_event, trade_id)
/// order (a recording, a live feed: nearly all); a window whose trades do not is folded again
/// from its trades sorted (stable, so exact ties keep arrival order).
pub fn partial_candles(trades: &Trades, length: i64) -> Partials {
    let (ts, ids) = (&trades.ts_event, &trades.trade_id);
    let key = |r: usize| (ts[r], ids[r]);
    let mut group_of: FxMap<(u32, i64), u32> = FxMap::default();
    let mut accs: Vec<Acc> = Vec::new();
    let mut group = Vec::with_capacity(ts.len());
    let mut cached: Option<((u32, i64), u32)> = None; // consecutive trades often share one
    for (r, (&pair, &t)) in trades.pair.iter().zip(ts).enumerate() {
        let window = (pair, window_start(t, length));
        let g = match cached {
            Some((w, g)) if w == window => g,
            _ => *group_of.entry(window).or_insert_with(|| {
                accs.push(Acc::new(pair, window.1, r));
                (accs.len() - 1) as u32
            }),
        };
        cached = Some((window, g));
        group.push(g);
        let acc = &mut accs[g as usize];
        if key(r) < key(acc.last) {
            acc.in_order = false;
        }
        acc.add(trades, r);
    }

    let disordered: Vec<usize> = (0..accs.len()).filter(|&g| !accs[g].in_order).collect();
    if !disordered.is_empty() {
        let mut rows: FxMap<u32, Vec<usize>> =
            disordered.iter().map(|&g| (g as u32, Vec::new())).collect();
        for (r, g) in group.iter().enumerate() {
            if let Some(list) = rows.get_mut(g) {
                list.push(r);
            }
        }
        for (g, mut list) in rows {
            list.sort_by_key(|&r| key(r)); // stable
            let old = &accs[g as usize];
            let mut acc = Acc::new(old.pair, old.open_time, list[0]);
            for r in list {
                acc.add(trades, r);
            }
            accs[g as usize] = acc;
        }
    }

    // Output order: by each window's first trade in (ts_event, trade_id, arrival) order.
    accs.sort_unstable_by_key(|a| (ts[a.first], ids[a.first], a.first));
    let mut out = Partials::with_capacity(trades.pairs.clone(), accs.len());
    for a in accs {
        out.pair.push(a.pair);
        out.open_time.push(a.open_time);
        out.open.push(trades.price[a.first]);
        out.open_ts.push(ts[a.first]);
        out.open_id.push(ids[a.first]);
        out.close.push(trades.price[a.last]);
        out.close_ts.push(ts[a.last]);
        out.close_id.push(ids[a.last]);
        out.high.push(a.high);
        out.low.push(a.low);
        out.volume.push(a.volume);
        out.quote_volume.push(a.quote_volume);
        out.trade_count.push(a.trade_count);
        out.taker_buy_volume.push(a.taker_buy_volume);
        out.taker_buy_quote_volume.push(a.taker_buy_quote_volume);
    }
    out
}

/// Finer partial candles merged into windows of `length` µs, groups in order of first
/// appearance (as `rollup_partials`), sums in input order.
pub fn rollup_partials(partials: &Partials, length: i64) -> Partials {
    let mut group_of: FxMap<(u32, i64), usize> = FxMap::default();
    let mut out = Partials::with_capacity(partials.pairs.clone(), partials.len());
    for i in 0..partials.len() {
        let key = (
            partials.pair[i],
            window_start(partials.open_time[i], length),
        );
        match group_of.get(&key) {
            Some(&g) => out.merge_row(g, partials, i),
            None => {
                group_of.insert(key, out.len());
                out.push_row(partials, i, key.1);
            }
        }
    }
    out
}

// ---- Arrow in and out -------------------------------------------------------------------

/// A string column in any of Arrow's string layouts: Polars exports `string_view`, its
/// `to_arrow()` `large_string`, pyarrow `string`.
enum Strings<'a> {
    Small(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
}

impl<'a> Strings<'a> {
    fn len(&self) -> usize {
        match self {
            Strings::Small(a) => a.len(),
            Strings::Large(a) => a.len(),
            Strings::View(a) => a.len(),
        }
    }

    fn value(&self, i: usize) -> &'a str {
        match self {
            Strings::Small(a) => a.value(i),
            Strings::Large(a) => a.value(i),
            Strings::View(a) => a.value(i),
        }
    }
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, ArrowError> {
    let array = batch
        .column_by_name(name)
        .ok_or_else(|| ArrowError::SchemaError(format!("no column {name:?}")))?;
    if array.null_count() > 0 {
        return Err(ArrowError::InvalidArgumentError(format!(
            "column {name:?} holds nulls"
        )));
    }
    Ok(array)
}

fn mistyped(name: &str, array: &ArrayRef, want: &str) -> ArrowError {
    ArrowError::SchemaError(format!(
        "column {name:?} is {}, not {want}",
        array.data_type()
    ))
}

fn strings<'a>(batch: &'a RecordBatch, name: &str) -> Result<Strings<'a>, ArrowError> {
    let array = column(batch, name)?;
    let any = array.as_any();
    match array.data_type() {
        DataType::Utf8 => any.downcast_ref().map(Strings::Small),
        DataType::LargeUtf8 => any.downcast_ref().map(Strings::Large),
        DataType::Utf8View => any.downcast_ref().map(Strings::View),
        _ => None,
    }
    .ok_or_else(|| mistyped(name, array, "a string"))
}

/// An int64 column; `ts_event` may also be a µs timestamp (same values).
fn int64s<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a [i64], ArrowError> {
    let array = column(batch, name)?;
    let any = array.as_any();
    match array.data_type() {
        DataType::Int64 => any
            .downcast_ref::<Int64Array>()
            .map(|a| a.values().as_ref()),
        DataType::Timestamp(TimeUnit::Microsecond, _) => any
            .downcast_ref::<TimestampMicrosecondArray>()
            .map(|a| a.values().as_ref()),
        _ => None,
    }
    .ok_or_else(|| mistyped(name, array, "int64 (or timestamp[us])"))
}

fn float64s<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a [f64], ArrowError> {
    let array = column(batch, name)?;
    array
        .as_any()
        .downcast_ref::<Float64Array>()
        .map(|a| a.values().as_ref())
        .ok_or_else(|| mistyped(name, array, "float64"))
}

/// (exchange, symbol) pairs numbered in order of first appearance.
#[derive(Default)]
struct PairIndex {
    pairs: Vec<(String, String)>,
    index: FxMap<String, FxMap<String, u32>>,
    last: Option<u32>, // consecutive rows often share one
}

impl PairIndex {
    fn get(&mut self, exchange: &str, symbol: &str) -> u32 {
        if let Some(p) = self.last {
            let (e, s) = &self.pairs[p as usize];
            if e == exchange && s == symbol {
                return p;
            }
        }
        let next = self.pairs.len() as u32;
        let symbols = match self.index.get_mut(exchange) {
            Some(symbols) => symbols,
            None => self.index.entry(exchange.to_owned()).or_default(),
        };
        let p = match symbols.get(symbol) {
            Some(&p) => p,
            None => {
                symbols.insert(symbol.to_owned(), next);
                self.pairs.push((exchange.to_owned(), symbol.to_owned()));
                next
            }
        };
        self.last = Some(p);
        p
    }
}

/// The distinct strings of string columns, numbered in order of first appearance: equal
/// texts get one number whatever their layout or buffer.
#[derive(Default)]
struct Interner<'a> {
    by_text: FxMap<&'a str, u32>,
    texts: Vec<&'a str>,
    by_view: FxMap<u128, u32>, // inline string views (≤ 12 bytes): a cache before `by_text`
}

impl<'a> Interner<'a> {
    fn text(&mut self, text: &'a str) -> u32 {
        let next = self.texts.len() as u32;
        *self.by_text.entry(text).or_insert_with(|| {
            self.texts.push(text);
            next
        })
    }

    /// Append the number of each row's string to `out`. Consecutive rows often repeat one;
    /// a short string's view (length and bytes in one u128) is its own key.
    fn column(&mut self, strings: &Strings<'a>, out: &mut Vec<u32>) {
        out.reserve(strings.len());
        if let Strings::View(a) = strings {
            let mut last: Option<(u128, u32)> = None;
            for (i, &view) in a.views().iter().enumerate() {
                let id = match last {
                    Some((v, id)) if v == view => id,
                    _ if view as u32 <= 12 => match self.by_view.get(&view) {
                        Some(&id) => id,
                        None => {
                            let id = self.text(a.value(i));
                            self.by_view.insert(view, id);
                            id
                        }
                    },
                    _ => self.text(a.value(i)),
                };
                last = Some((view, id));
                out.push(id);
            }
            return;
        }
        let mut last: Option<(&str, u32)> = None;
        for i in 0..strings.len() {
            let text = strings.value(i);
            let id = match last {
                Some((t, id)) if t == text => id,
                _ => self.text(text),
            };
            last = Some((text, id));
            out.push(id);
        }
    }
}

/// Append whether each row's side is "buy" to `out`.
fn buys(side: &Strings<'_>, out: &mut Vec<bool>) {
    out.reserve(side.len());
    if let Strings::View(a) = side {
        // An inline view: length in the low 32 bits, then the bytes.
        const BUY: u32 = u32::from_le_bytes([b'b', b'u', b'y', 0]);
        out.extend(
            a.views()
                .iter()
                .map(|&v| v as u32 == 3 && ((v >> 32) as u32 & 0x00ff_ffff) == BUY),
        );
    } else {
        out.extend((0..side.len()).map(|i| side.value(i) == "buy"));
    }
}

/// The trade columns of `batches` (any other columns are ignored), with each (exchange,
/// symbol) numbered once.
pub fn trades_from_batches(batches: &[RecordBatch]) -> Result<Trades, ArrowError> {
    let rows = batches.iter().map(RecordBatch::num_rows).sum();
    let mut out = Trades {
        pair: Vec::with_capacity(rows),
        trade_id: Vec::with_capacity(rows),
        ts_event: Vec::with_capacity(rows),
        price: Vec::with_capacity(rows),
        qty: Vec::with_capacity(rows),
        buy: Vec::with_capacity(rows),
        ..Trades::default()
    };
    let (mut exchanges, mut symbols) = (Interner::default(), Interner::default());
    let (mut exchange, mut symbol) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
    for batch in batches {
        exchanges.column(&strings(batch, "exchange")?, &mut exchange);
        symbols.column(&strings(batch, "symbol")?, &mut symbol);
        buys(&strings(batch, "side")?, &mut out.buy);
        out.trade_id.extend_from_slice(int64s(batch, "trade_id")?);
        out.ts_event.extend_from_slice(int64s(batch, "ts_event")?);
        out.price.extend_from_slice(float64s(batch, "price")?);
        out.qty.extend_from_slice(float64s(batch, "qty")?);
    }
    let mut pair_of: FxMap<(u32, u32), u32> = FxMap::default();
    let mut last: Option<((u32, u32), u32)> = None;
    for key in exchange.into_iter().zip(symbol) {
        let pair = match last {
            Some((k, p)) if k == key => p,
            _ => *pair_of.entry(key).or_insert_with(|| {
                let (e, s) = (
                    exchanges.texts[key.0 as usize],
                    symbols.texts[key.1 as usize],
                );
                out.pairs.push((e.to_owned(), s.to_owned()));
                (out.pairs.len() - 1) as u32
            }),
        };
        last = Some((key, pair));
        out.pair.push(pair);
    }
    Ok(out)
}

/// Partial candles from `batches` of `exchange, symbol, open_time` and `PARTIAL_COLUMNS`
/// (as `partial_candles` returns them; any other columns are ignored).
pub fn partials_from_batches(batches: &[RecordBatch]) -> Result<Partials, ArrowError> {
    let rows = batches.iter().map(RecordBatch::num_rows).sum();
    let mut out = Partials::with_capacity(Vec::new(), rows);
    let mut pairs = PairIndex::default();
    for batch in batches {
        let exchange = strings(batch, "exchange")?;
        let symbol = strings(batch, "symbol")?;
        for i in 0..batch.num_rows() {
            out.pair.push(pairs.get(exchange.value(i), symbol.value(i)));
        }
        out.open_time.extend_from_slice(int64s(batch, "open_time")?);
        out.open.extend_from_slice(float64s(batch, "open")?);
        out.open_ts.extend_from_slice(int64s(batch, "open_ts")?);
        out.open_id.extend_from_slice(int64s(batch, "open_id")?);
        out.close.extend_from_slice(float64s(batch, "close")?);
        out.close_ts.extend_from_slice(int64s(batch, "close_ts")?);
        out.close_id.extend_from_slice(int64s(batch, "close_id")?);
        out.high.extend_from_slice(float64s(batch, "high")?);
        out.low.extend_from_slice(float64s(batch, "low")?);
        out.volume.extend_from_slice(float64s(batch, "volume")?);
        out.quote_volume
            .extend_from_slice(float64s(batch, "quote_volume")?);
        out.trade_count
            .extend_from_slice(int64s(batch, "trade_count")?);
        out.taker_buy_volume
            .extend_from_slice(float64s(batch, "taker_buy_volume")?);
        out.taker_buy_quote_volume
            .extend_from_slice(float64s(batch, "taker_buy_quote_volume")?);
    }
    out.pairs = pairs.pairs;
    Ok(out)
}

/// Partial candles as one record batch: `exchange, symbol` (string), `open_time` (int64 µs)
/// and `PARTIAL_COLUMNS`, the schema `partial_candles` returns for int64 event times.
pub fn partials_to_batch(p: Partials) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_from_iter(partial_arrays(p))
}

/// Partial candles of several window lengths in one batch: a leading `length_us` column, then
/// the columns of `partials_to_batch`, each length's rows in the order given.
pub fn stacked_to_batch(all: Vec<(i64, Partials)>) -> Result<RecordBatch, ArrowError> {
    let mut stacked = Partials::default();
    let mut lengths = Vec::new();
    for (length, p) in all {
        // Each length's pairs come from the same trades, but index them into one list.
        let base = stacked.pairs.len() as u32;
        lengths.extend(std::iter::repeat_n(length, p.len()));
        stacked.pairs.extend(p.pairs);
        stacked.pair.extend(p.pair.iter().map(|&i| base + i));
        stacked.open_time.extend(p.open_time);
        stacked.open.extend(p.open);
        stacked.open_ts.extend(p.open_ts);
        stacked.open_id.extend(p.open_id);
        stacked.close.extend(p.close);
        stacked.close_ts.extend(p.close_ts);
        stacked.close_id.extend(p.close_id);
        stacked.high.extend(p.high);
        stacked.low.extend(p.low);
        stacked.volume.extend(p.volume);
        stacked.quote_volume.extend(p.quote_volume);
        stacked.trade_count.extend(p.trade_count);
        stacked.taker_buy_volume.extend(p.taker_buy_volume);
        stacked
            .taker_buy_quote_volume
            .extend(p.taker_buy_quote_volume);
    }
    let mut columns = vec![("length_us", Arc::new(Int64Array::from(lengths)) as ArrayRef)];
    columns.extend(partial_arrays(stacked));
    RecordBatch::try_from_iter(columns)
}

fn partial_arrays(p: Partials) -> Vec<(&'static str, ArrayRef)> {
    let exchange = StringArray::from_iter_values(p.pair.iter().map(|&i| &p.pairs[i as usize].0));
    let symbol = StringArray::from_iter_values(p.pair.iter().map(|&i| &p.pairs[i as usize].1));
    let f = |v: Vec<f64>| Arc::new(Float64Array::from(v)) as ArrayRef;
    let i = |v: Vec<i64>| Arc::new(Int64Array::from(v)) as ArrayRef;
    vec![
        ("exchange", Arc::new(exchange) as ArrayRef),
        ("symbol", Arc::new(symbol)),
        ("open_time", i(p.open_time)),
        ("open", f(p.open)),
        ("open_ts", i(p.open_ts)),
        ("open_id", i(p.open_id)),
        ("close", f(p.close)),
        ("close_ts", i(p.close_ts)),
        ("close_id", i(p.close_id)),
        ("high", f(p.high)),
        ("low", f(p.low)),
        ("volume", f(p.volume)),
        ("quote_volume", f(p.quote_volume)),
        ("trade_count", i(p.trade_count)),
        ("taker_buy_volume", f(p.taker_buy_volume)),
        ("taker_buy_quote_volume", f(p.taker_buy_quote_volume)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::TimestampMicrosecondArray;

    const MIN: i64 = 60_000_000;
    const T0: i64 = 1_723_161_600_000_000; // 2024-08-09 00:00 UTC, a minute boundary

    /// (symbol, trade_id, ts_event, price, qty, buy), exchange "binance".
    type Row = (&'static str, i64, i64, f64, f64, bool);

    fn trades(rows: &[Row]) -> Trades {
        let mut pairs = PairIndex::default();
        let mut t = Trades::default();
        for &(symbol, id, ts, price, qty, buy) in rows {
            t.pair.push(pairs.get("binance", symbol));
            t.trade_id.push(id);
            t.ts_event.push(ts);
            t.price.push(price);
            t.qty.push(qty);
            t.buy.push(buy);
        }
        t.pairs = pairs.pairs;
        t
    }

    fn symbols(p: &Partials) -> Vec<&str> {
        p.pair
            .iter()
            .map(|&i| p.pairs[i as usize].1.as_str())
            .collect()
    }

    #[test]
    fn one_trade_is_a_whole_candle() {
        let p = partial_candles(&trades(&[("BTC-USDT", 7, T0 + 5, 2.5, 4.0, true)]), MIN);
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p.open_time[0], p.open[0], p.open_ts[0], p.open_id[0]),
            (T0, 2.5, T0 + 5, 7)
        );
        assert_eq!((p.close[0], p.close_ts[0], p.close_id[0]), (2.5, T0 + 5, 7));
        assert_eq!(
            (p.high[0], p.low[0], p.volume[0], p.quote_volume[0]),
            (2.5, 2.5, 4.0, 10.0)
        );
        assert_eq!(p.trade_count[0], 1);
        assert_eq!(
            (p.taker_buy_volume[0], p.taker_buy_quote_volume[0]),
            (4.0, 10.0)
        );
    }

    #[test]
    fn equal_event_times_are_ordered_by_trade_id_in_any_arrival_order() {
        let ids = [13, 11, 14, 12];
        let rows: Vec<Row> = ids
            .iter()
            .map(|&i| ("A", i, T0 + 5, i as f64, 1.0, false))
            .collect();
        for start in 0..rows.len() {
            let mut turned = rows.clone();
            turned.rotate_left(start);
            let p = partial_candles(&trades(&turned), MIN);
            assert_eq!(
                (p.open[0], p.open_id[0], p.close[0], p.close_id[0]),
                (11.0, 11, 14.0, 14)
            );
        }
    }

    #[test]
    fn event_time_orders_before_trade_id() {
        // The lowest id trades last, the highest first: time wins both ways.
        let p = partial_candles(
            &trades(&[
                ("A", 1, T0 + 9, 1.0, 1.0, false),
                ("A", 9, T0 + 2, 9.0, 1.0, false),
            ]),
            MIN,
        );
        assert_eq!(
            (p.open_id[0], p.open[0], p.close_id[0], p.close[0]),
            (9, 9.0, 1, 1.0)
        );
    }

    #[test]
    fn a_trade_on_the_minute_boundary_opens_the_next_minute() {
        let p = partial_candles(
            &trades(&[
                ("A", 1, T0 + MIN - 1, 1.0, 1.0, false),
                ("A", 2, T0 + MIN, 2.0, 1.0, false),
            ]),
            MIN,
        );
        assert_eq!(p.open_time, vec![T0, T0 + MIN]);
        assert_eq!(p.open_id, vec![1, 2]);
    }

    #[test]
    fn windows_are_floored_before_the_epoch_too() {
        let p = partial_candles(&trades(&[("A", 1, -1, 1.0, 1.0, false)]), MIN);
        assert_eq!(p.open_time, vec![-MIN]);
    }

    #[test]
    fn groups_come_in_order_of_their_first_trade_by_event_time_then_id() {
        // Arrival: B's minute, A's minute 1, A's minute 0; first trades: A0 at T0 + 1,
        // B at T0 + 2 (id 3) and A at T0 + 2 (id 4), A1 at T0 + MIN.
        let p = partial_candles(
            &trades(&[
                ("B", 3, T0 + 2, 1.0, 1.0, false),
                ("A", 5, T0 + MIN, 1.0, 1.0, false),
                ("A", 4, T0 + 2, 1.0, 1.0, false),
                ("A", 2, T0 + 1, 1.0, 1.0, false),
            ]),
            MIN,
        );
        assert_eq!(symbols(&p), vec!["A", "B", "A"]);
        assert_eq!(p.open_time, vec![T0, T0, T0 + MIN]);
        // An exact (ts_event, trade_id) tie across symbols keeps arrival order.
        let p = partial_candles(
            &trades(&[("B", 3, T0, 1.0, 1.0, false), ("A", 3, T0, 1.0, 1.0, false)]),
            MIN,
        );
        assert_eq!(symbols(&p), vec!["B", "A"]);
    }

    #[test]
    fn sums_run_in_event_time_order_whatever_the_arrival_order() {
        // In (ts_event, trade_id) order 1e16 comes first and absorbs each 1.0 (its ulp is 2);
        // summed in arrival order the two 1.0 would add up to 2 before meeting it.
        let big = ("A", 1, T0, 1.0, 1e16, true);
        let small = [
            ("A", 2, T0 + 1, 1.0, 1.0, true),
            ("A", 3, T0 + 2, 1.0, 1.0, true),
        ];
        for rows in [vec![big, small[0], small[1]], vec![small[0], small[1], big]] {
            let p = partial_candles(&trades(&rows), MIN);
            assert_eq!(p.volume, vec![1e16]);
            assert_eq!(p.quote_volume, vec![1e16]);
            assert_eq!(p.taker_buy_volume, vec![1e16]);
        }
        assert_ne!(1.0 + 1.0 + 1e16, 1e16); // the other order would show
    }

    #[test]
    fn taker_buy_sums_count_buys_only_and_extremes_cover_every_trade() {
        let p = partial_candles(
            &trades(&[
                ("A", 1, T0, 3.0, 2.0, true),
                ("A", 2, T0 + 1, 5.0, 1.0, false),
                ("A", 3, T0 + 2, 1.0, 4.0, true),
            ]),
            MIN,
        );
        assert_eq!((p.high[0], p.low[0], p.trade_count[0]), (5.0, 1.0, 3));
        assert_eq!((p.volume[0], p.quote_volume[0]), (7.0, 15.0));
        assert_eq!(
            (p.taker_buy_volume[0], p.taker_buy_quote_volume[0]),
            (6.0, 10.0)
        );
    }

    #[test]
    fn a_rollup_of_minutes_is_the_fold_of_the_longer_window() {
        // Integer quantities and prices: every sum is exact in any order.
        let mut rows: Vec<Row> = Vec::new();
        for i in 0..40i64 {
            let symbol = if i % 3 == 0 { "A" } else { "B" };
            let ts = T0 + (i * 7919 * 1_000_003) % (12 * MIN);
            rows.push((
                symbol,
                100 - i,
                ts,
                (i % 11) as f64 + 1.0,
                (i % 5) as f64,
                i % 2 == 0,
            ));
        }
        let t = trades(&rows);
        for length in [5 * MIN, 15 * MIN, 60 * MIN] {
            let rolled = rollup_partials(&partial_candles(&t, MIN), length);
            let direct = partial_candles(&t, length);
            let key = |p: &Partials| {
                let mut k: Vec<_> = (0..p.len())
                    .map(|i| (symbols(p)[i].to_owned(), p.open_time[i], p.open_id[i]))
                    .collect();
                k.sort();
                k
            };
            assert_eq!(key(&rolled), key(&direct));
            let by_key = |p: &Partials| {
                let mut rows: Vec<_> = (0..p.len())
                    .map(|i| {
                        (
                            symbols(p)[i].to_owned(),
                            p.open_time[i],
                            p.close_id[i],
                            p.open[i].to_bits(),
                            p.close[i].to_bits(),
                            p.high[i].to_bits(),
                            p.low[i].to_bits(),
                            p.volume[i].to_bits(),
                            p.quote_volume[i].to_bits(),
                            p.trade_count[i],
                            p.taker_buy_volume[i].to_bits(),
                        )
                    })
                    .collect();
                rows.sort();
                rows
            };
            assert_eq!(by_key(&rolled), by_key(&direct));
        }
    }

    #[test]
    fn a_rollup_breaks_ties_by_trade_id_and_keeps_first_appearance_order() {
        let mut p = partial_candles(
            &trades(&[
                ("B", 8, T0 + MIN, 1.0, 1.0, false),
                ("A", 5, T0 + MIN, 5.0, 1.0, false),
                ("A", 9, T0 + 2 * MIN, 9.0, 1.0, false),
            ]),
            MIN,
        );
        // Groups by first trade: A's first minute (id 5), B's (id 8), A's second (id 9).
        assert_eq!(symbols(&p), vec!["A", "B", "A"]);
        // A second partial of A's first minute with the same open time, a lower id.
        p.push_row(&p.clone(), 0, T0 + MIN);
        let last = p.len() - 1;
        (
            p.open_id[last],
            p.open[last],
            p.close_id[last],
            p.close[last],
        ) = (3, 3.0, 3, 3.0);
        let r = rollup_partials(&p, 5 * MIN);
        assert_eq!(symbols(&r), vec!["A", "B"]);
        let a = 0;
        assert_eq!(
            (r.open_id[a], r.open[a], r.close_id[a], r.close[a]),
            (3, 3.0, 9, 9.0)
        );
        assert_eq!((r.open_time[a], r.trade_count[a]), (T0, 3));
    }

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).unwrap()
    }

    #[test]
    fn arrow_input_takes_every_string_layout_and_timestamps() {
        let ts = TimestampMicrosecondArray::from(vec![T0 + 1, T0 + 2]).with_timezone("UTC");
        let b = batch(vec![
            (
                "exchange",
                Arc::new(StringViewArray::from(vec!["binance", "binance"])) as ArrayRef,
            ),
            ("symbol", Arc::new(LargeStringArray::from(vec!["A", "B"]))),
            ("trade_id", Arc::new(Int64Array::from(vec![1, 2]))),
            ("price", Arc::new(Float64Array::from(vec![1.5, 2.5]))),
            ("qty", Arc::new(Float64Array::from(vec![1.0, 2.0]))),
            ("side", Arc::new(StringArray::from(vec!["buy", "sell"]))),
            ("ts_event", Arc::new(ts)),
        ]);
        let t = trades_from_batches(&[b.clone(), b.slice(1, 1)]).unwrap();
        assert_eq!(t.pairs.len(), 2);
        assert_eq!(t.pair, vec![0, 1, 1]);
        assert_eq!(t.ts_event, vec![T0 + 1, T0 + 2, T0 + 2]);
        assert_eq!(t.price, vec![1.5, 2.5, 2.5]);
        assert_eq!(t.buy, vec![true, false, false]);
        let out = partials_to_batch(partial_candles(&t, MIN)).unwrap();
        let names: Vec<String> = out
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(&names[..3], ["exchange", "symbol", "open_time"]);
        assert_eq!(&names[3..], PARTIAL_COLUMNS);
        let back = partials_from_batches(&[out]).unwrap();
        assert_eq!(back, partial_candles(&t, MIN));
    }

    #[test]
    fn arrow_input_refuses_nulls_missing_columns_and_wrong_types() {
        let ok: Vec<(&str, ArrayRef)> = vec![
            (
                "exchange",
                Arc::new(StringArray::from(vec!["binance"])) as ArrayRef,
            ),
            ("symbol", Arc::new(StringArray::from(vec!["A"]))),
            ("trade_id", Arc::new(Int64Array::from(vec![1]))),
            ("price", Arc::new(Float64Array::from(vec![1.0]))),
            ("qty", Arc::new(Float64Array::from(vec![1.0]))),
            ("side", Arc::new(StringArray::from(vec!["buy"]))),
            ("ts_event", Arc::new(Int64Array::from(vec![T0]))),
        ];
        assert!(trades_from_batches(&[batch(ok.clone())]).is_ok());
        let mut nulls = ok.clone();
        nulls[3].1 = Arc::new(Float64Array::from(vec![None]));
        let err = trades_from_batches(&[batch(nulls)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"price\" holds nulls"), "{err}");
        let err = trades_from_batches(&[batch(ok[1..].to_vec())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no column \"exchange\""), "{err}");
        let mut floats = ok.clone();
        floats[2].1 = Arc::new(Float64Array::from(vec![1.0]));
        let err = trades_from_batches(&[batch(floats)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"trade_id\" is Float64"), "{err}");
    }

    #[test]
    fn stacked_lengths_keep_each_lengths_rows_in_order() {
        let t = trades(&[
            ("B", 1, T0, 1.0, 1.0, false),
            ("A", 2, T0 + MIN, 2.0, 1.0, false),
        ]);
        let minutes = partial_candles(&t, MIN);
        let hours = rollup_partials(&minutes, 60 * MIN);
        let b = stacked_to_batch(vec![(MIN, minutes.clone()), (60 * MIN, hours)]).unwrap();
        let lengths = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(lengths.values().as_ref(), [MIN, MIN, 60 * MIN, 60 * MIN]);
        let symbol = b.column_by_name("symbol").unwrap();
        let symbol = symbol.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(
            symbol.iter().flatten().collect::<Vec<_>>(),
            ["B", "A", "B", "A"]
        );
        let back = partials_from_batches(&[b.slice(0, 2)]).unwrap();
        assert_eq!(back, minutes);
    }

    #[test]
    fn no_trades_no_candles() {
        assert!(partial_candles(&Trades::default(), MIN).is_empty());
        assert_eq!(
            partials_to_batch(Partials::default()).unwrap().num_rows(),
            0
        );
    }
}
