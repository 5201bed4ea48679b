{# OHLC invariants: low <= open, close <= high (and so low <= high). Fails on each row that breaks one. #}
{% test ohlc_consistent(model, open='open_price', high='high_price', low='low_price', close='close_price') %}
select *
from {{ model }}
where {{ low }} > {{ open }} or {{ low }} > {{ close }}
   or {{ open }} > {{ high }} or {{ close }} > {{ high }}
   or {{ open }} is null or {{ high }} is null or {{ low }} is null or {{ close }} is null
{% endtest %}
