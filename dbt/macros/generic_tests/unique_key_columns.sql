{# A composite key: no two rows share the same values of `columns` (use with not_null on each). #}
{% test unique_key_columns(model, columns) %}
select {{ columns | join(', ') }}, count(*) as occurrences
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
