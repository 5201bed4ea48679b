//! `marketpipe_native`: the compiled hot path of marketpipe, as a Python extension module.
//!
//! Arrow comes in and results leave as Arrow record batches through the Arrow C data
//! interface (PyCapsule protocol, `__arrow_c_stream__` / `__arrow_c_array__`), so Python hands
//! over and gets columns without a Python object per row.

pub mod binance;
pub mod candles;
pub mod dedup;
pub mod json;

use std::sync::Arc;

use arrow_array::ffi::{from_ffi, to_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::ffi_stream::{FFI_ArrowArrayStream, RecordBatchStreamReader};
use arrow_array::Array;
use arrow_array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow_schema::ArrowError;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCapsule};

use crate::binance::{decode_block, Decoded, Origin};
use crate::candles::{
    partial_candles as fold, partials_from_batches, partials_to_batch, rollup_partials as rollup,
    stacked_to_batch, trades_from_batches,
};

/// One Arrow record batch, handed to pyarrow by `pyarrow.record_batch(obj)`.
#[pyclass(module = "marketpipe_native", frozen)]
struct ArrowBatch {
    batch: RecordBatch,
}

#[pymethods]
impl ArrowBatch {
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_array__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<(Bound<'py, PyCapsule>, Bound<'py, PyCapsule>)> {
        let _ = requested_schema; // the batch has one schema; the caller casts if it must
        let data = StructArray::from(self.batch.clone()).to_data();
        let (array, schema): (FFI_ArrowArray, FFI_ArrowSchema) =
            to_ffi(&data).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let schema = PyCapsule::new_with_value(py, schema, c"arrow_schema")?;
        let array = PyCapsule::new_with_value(py, array, c"arrow_array")?;
        Ok((schema, array))
    }

    #[getter]
    fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }
}

fn timestamps(values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
}

fn constant(text: &str, rows: usize) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
        text, rows,
    )))
}

fn origin(o: Origin) -> Vec<(&'static str, ArrayRef)> {
    vec![
        ("no", Arc::new(Int64Array::from(o.no)) as ArrayRef),
        ("start", Arc::new(Int64Array::from(o.start))),
        ("end", Arc::new(Int64Array::from(o.end))),
    ]
}

fn batches(
    decoded: Decoded,
    block: &[u8],
    exchange: &str,
) -> Result<(RecordBatch, RecordBatch, RecordBatch, Vec<String>), ArrowError> {
    let Decoded {
        symbols,
        trades: t,
        quotes: q,
        rest,
        ..
    } = decoded;

    let rows = t.trade_id.len();
    let side =
        StringArray::from_iter_values(t.sell.iter().map(|&s| if s { "sell" } else { "buy" }));
    let mut columns: Vec<(&str, ArrayRef)> = vec![
        ("exchange", constant(exchange, rows)),
        ("symbol_index", Arc::new(Int32Array::from(t.symbol))),
        ("trade_id", Arc::new(Int64Array::from(t.trade_id))),
        ("price", Arc::new(Float64Array::from(t.price))),
        ("qty", Arc::new(Float64Array::from(t.qty))),
        ("side", Arc::new(side)),
        ("ts_event", timestamps(t.ts_event)),
        ("ts_recv", timestamps(t.ts_recv)),
    ];
    columns.extend(origin(t.origin));
    let trades = RecordBatch::try_from_iter(columns)?;

    let rows = q.bid.len();
    let stream = StringArray::from_iter(
        q.stream
            .iter()
            .map(|span| span.and_then(|(a, b)| std::str::from_utf8(&block[a..b]).ok())),
    );
    let mut columns: Vec<(&str, ArrayRef)> = vec![
        ("exchange", constant(exchange, rows)),
        ("symbol_index", Arc::new(Int32Array::from(q.symbol))),
        ("bid", Arc::new(Float64Array::from(q.bid))),
        ("bid_qty", Arc::new(Float64Array::from(q.bid_qty))),
        ("ask", Arc::new(Float64Array::from(q.ask))),
        ("ask_qty", Arc::new(Float64Array::from(q.ask_qty))),
        ("ts_event", timestamps(q.ts.clone())),
        ("ts_recv", timestamps(q.ts)),
    ];
    columns.extend(origin(q.origin));
    columns.push(("stream", Arc::new(stream)));
    let quotes = RecordBatch::try_from_iter(columns)?;

    // Handed-back lines as text, undecodable bytes as U+FFFD: as Polars' lossy reader has them.
    let lines = StringArray::from_iter_values(
        rest.span
            .iter()
            .map(|&(a, b)| String::from_utf8_lossy(&block[a..b])),
    );
    let rest = RecordBatch::try_from_iter(vec![
        ("line", Arc::new(lines) as ArrayRef),
        ("no", Arc::new(Int64Array::from(rest.no))),
    ])?;
    Ok((trades, quotes, rest, symbols))
}

/// Decode one block of whole `<recv_ns> <json>` lines of Binance combined-stream frames.
///
/// Returns `(trades, quotes, rest, symbols)`: Arrow batches of the trades and bookTicker
/// quotes decoded here (`symbol_index` points into `symbols`, the venue's own spellings;
/// `no`, `start`, `end` locate each line), and `rest`: every other non-empty line with its
/// number, for the Python parser. The GIL is released while decoding.
#[pyfunction]
fn decode_binance_block(
    py: Python<'_>,
    block: &Bound<'_, PyBytes>,
    first_line: i64,
    exchange: &str,
) -> PyResult<(ArrowBatch, ArrowBatch, ArrowBatch, Vec<String>)> {
    let bytes = block.as_bytes();
    let exchange = exchange.to_owned();
    let (trades, quotes, rest, symbols) = py
        .detach(|| batches(decode_block(bytes, first_line), bytes, &exchange))
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok((
        ArrowBatch { batch: trades },
        ArrowBatch { batch: quotes },
        ArrowBatch { batch: rest },
        symbols,
    ))
}

fn value_error(e: ArrowError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// The record batches of any object that speaks the Arrow PyCapsule protocol: a stream
/// (`__arrow_c_stream__`: a pyarrow Table, a Polars DataFrame) or one struct array
/// (`__arrow_c_array__`: a pyarrow RecordBatch, an `ArrowBatch`). The data is moved, not
/// copied; the producer's buffers live as long as the batches.
fn import_batches(obj: &Bound<'_, PyAny>) -> PyResult<Vec<RecordBatch>> {
    if obj.hasattr("__arrow_c_stream__")? {
        let capsule = obj
            .call_method0("__arrow_c_stream__")?
            .cast_into::<PyCapsule>()?;
        let pointer = capsule.pointer_checked(Some(c"arrow_array_stream"))?;
        // SAFETY: a capsule named "arrow_array_stream" holds an FFI_ArrowArrayStream; from_raw
        // moves it out and leaves a released stream for the capsule's destructor.
        let stream = unsafe { FFI_ArrowArrayStream::from_raw(pointer.as_ptr().cast()) };
        let reader = RecordBatchStreamReader::try_new(stream).map_err(value_error)?;
        return reader.collect::<Result<_, _>>().map_err(value_error);
    }
    if obj.hasattr("__arrow_c_array__")? {
        let (schema, array): (Bound<'_, PyCapsule>, Bound<'_, PyCapsule>) =
            obj.call_method0("__arrow_c_array__")?.extract()?;
        let schema = schema.pointer_checked(Some(c"arrow_schema"))?;
        let array = array.pointer_checked(Some(c"arrow_array"))?;
        // SAFETY: the capsules are named as the protocol says; the array is moved out (its
        // capsule is left released), the schema only read while its capsule lives.
        let data = unsafe {
            let array = FFI_ArrowArray::from_raw(array.as_ptr().cast());
            from_ffi(array, &*schema.as_ptr().cast::<FFI_ArrowSchema>())
        }
        .map_err(value_error)?;
        if !matches!(data.data_type(), arrow_schema::DataType::Struct(_)) {
            return Err(PyTypeError::new_err(format!(
                "expected a record batch (a struct array), got {}",
                data.data_type()
            )));
        }
        return Ok(vec![RecordBatch::from(StructArray::from(data))]);
    }
    Err(PyTypeError::new_err(format!(
        "expected Arrow data (__arrow_c_stream__ or __arrow_c_array__), got {}",
        obj.get_type().name()?
    )))
}

fn window_length(length_us: i64) -> PyResult<i64> {
    if length_us <= 0 {
        return Err(PyValueError::new_err(format!(
            "a window length must be positive, not {length_us}"
        )));
    }
    Ok(length_us)
}

/// Partial candles of `trades` (Arrow: exchange, symbol, side strings; trade_id, ts_event
/// int64 µs or timestamp[us]; price, qty float64) per (exchange, symbol, window of
/// `length_us`): the columns and row order of `marketpipe.processing.candles.partial_candles`.
/// The GIL is released while folding.
#[pyfunction]
fn partial_candles(
    py: Python<'_>,
    trades: &Bound<'_, PyAny>,
    length_us: i64,
) -> PyResult<ArrowBatch> {
    let length = window_length(length_us)?;
    let batches = import_batches(trades)?;
    let batch = py
        .detach(|| partials_to_batch(fold(&trades_from_batches(&batches)?, length)))
        .map_err(value_error)?;
    Ok(ArrowBatch { batch })
}

/// Finer partial candles (as `partial_candles` returns them) merged into windows of
/// `length_us`: the columns and row order of `candles.rollup_partials`.
#[pyfunction]
fn rollup_partials(
    py: Python<'_>,
    partials: &Bound<'_, PyAny>,
    length_us: i64,
) -> PyResult<ArrowBatch> {
    let length = window_length(length_us)?;
    let batches = import_batches(partials)?;
    let batch = py
        .detach(|| partials_to_batch(rollup(&partials_from_batches(&batches)?, length)))
        .map_err(value_error)?;
    Ok(ArrowBatch { batch })
}

/// The engine's whole fold in one call: partial candles of `trades` for the first length,
/// then each later length as a rollup of those (each a multiple of the first), in one batch:
/// a leading `length_us` column, then the columns of `partial_candles`, rows by length in the
/// order given (one batch, so Python converts it once).
#[pyfunction]
fn fold_candles(
    py: Python<'_>,
    trades: &Bound<'_, PyAny>,
    lengths_us: Vec<i64>,
) -> PyResult<ArrowBatch> {
    let Some(&first) = lengths_us.first() else {
        return Err(PyValueError::new_err("no window lengths given"));
    };
    window_length(first)?;
    for &length in &lengths_us[1..] {
        if window_length(length)? % first != 0 {
            return Err(PyValueError::new_err(format!(
                "a rollup length must be a multiple of {first}, not {length}"
            )));
        }
    }
    let batches = import_batches(trades)?;
    let batch = py
        .detach(|| -> Result<RecordBatch, ArrowError> {
            let finest = fold(&trades_from_batches(&batches)?, first);
            let mut all = Vec::with_capacity(lengths_us.len());
            for &length in &lengths_us[1..] {
                all.push((length, rollup(&finest, length)));
            }
            all.insert(0, (first, finest));
            stacked_to_batch(all)
        })
        .map_err(value_error)?;
    Ok(ArrowBatch { batch })
}

/// One pair's slice of `first_rows`'s rows: (exchange, symbol, start, end, delivered).
type PairRows = (String, String, i64, i64, i64);

/// Each (exchange, symbol)'s first occurrence of every trade id in `trades` (Arrow with the
/// columns `partial_candles` reads): `(rows, pairs)`, where `rows` is a batch of one int64
/// column `row` holding the kept row numbers pair after pair, each pair's in arrival order,
/// and `pairs` lists `(exchange, symbol, start, end, delivered)` in order of first
/// appearance: that pair's rows are `row[start:end]` of its `delivered` rows. The semantics
/// of Polars' `partition_by` then `unique(keep="first", maintain_order=True)`. The GIL is
/// released while scanning.
#[pyfunction]
fn first_rows(py: Python<'_>, trades: &Bound<'_, PyAny>) -> PyResult<(ArrowBatch, Vec<PairRows>)> {
    let batches = import_batches(trades)?;
    let (batch, pairs) = py
        .detach(|| -> Result<_, ArrowError> {
            let t = trades_from_batches(&batches)?;
            let found = crate::dedup::first_rows(&t.pair, &t.trade_id, t.pairs.len());
            let pairs: Vec<_> = t
                .pairs
                .into_iter()
                .enumerate()
                .map(|(p, (exchange, symbol))| {
                    let (start, end) = (found.starts[p], found.starts[p + 1]);
                    (exchange, symbol, start, end, found.delivered[p])
                })
                .collect();
            let rows = Arc::new(Int64Array::from(found.rows)) as ArrayRef;
            Ok((RecordBatch::try_from_iter(vec![("row", rows)])?, pairs))
        })
        .map_err(value_error)?;
    Ok((ArrowBatch { batch }, pairs))
}

#[pymodule]
fn marketpipe_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ArrowBatch>()?;
    m.add_function(wrap_pyfunction!(decode_binance_block, m)?)?;
    m.add_function(wrap_pyfunction!(partial_candles, m)?)?;
    m.add_function(wrap_pyfunction!(rollup_partials, m)?)?;
    m.add_function(wrap_pyfunction!(fold_candles, m)?)?;
    m.add_function(wrap_pyfunction!(first_rows, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
