"""The command line: `marketpipe run | demo | replay | query | status | serve`, the cluster
roles, and the dbt, check, backfill and lifecycle tools. Each group of commands is a module of
this package; this one only puts them together."""

import typer

from marketpipe.cli import cluster, dbt, embedded, lifecycle, ops, query, serve

app = typer.Typer(
    help="marketpipe: exchange trades in; correct event-time candles, alerts, analytics out.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
embedded.register(app)  # run, demo, replay
query.register(app)  # query, status
serve.register(app)
cluster.register(app)  # ingest, process, archive, dlq
app.add_typer(dbt.app, name="dbt")
ops.register(app)  # check freshness|completeness, backfill
app.add_typer(lifecycle.app, name="lifecycle")


def main() -> None:
    app()
