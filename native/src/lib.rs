//! `marketpipe_native`: the compiled hot path of marketpipe, as a Python extension module.
//!
//! Results leave as Arrow record batches through the Arrow C data interface (PyCapsule
//! protocol, `__arrow_c_array__`), so Python gets columns without a Python object per row.

pub mod binance;
pub mod json;

use std::sync::Arc;

use arrow_array::ffi::{to_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::Array;
use arrow_array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow_schema::ArrowError;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCapsule};

use crate::binance::{decode_block, Decoded, Origin};

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

#[pymodule]
fn marketpipe_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ArrowBatch>()?;
    m.add_function(wrap_pyfunction!(decode_binance_block, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
