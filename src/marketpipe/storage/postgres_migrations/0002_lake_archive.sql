-- Lifecycle: the UTC days whose candles were archived to the lake (warm -> lake), so each
-- final day is written once and retention may then drop it from the warm store.
CREATE TABLE lake_archive (
    day timestamptz PRIMARY KEY, candles bigint NOT NULL, archived_at timestamptz NOT NULL
);
