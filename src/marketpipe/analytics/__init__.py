"""Analytics: the dbt project's runner (`dbt/` at the repo root) and the marts it builds."""
