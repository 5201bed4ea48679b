{# column_name lies within [lower, upper] (e.g. VWAP within [low, high]), up to a relative
   float tolerance for sums of products. #}
{% test within_columns(model, column_name, lower, upper, tolerance=1e-9) %}
select *
from {{ model }}
where {{ column_name }} < {{ lower }} - abs({{ lower }}) * {{ tolerance }}
   or {{ column_name }} > {{ upper }} + abs({{ upper }}) * {{ tolerance }}
{% endtest %}
