{# Models land in plain `staging`, `intermediate` and `marts` schemas on every target, so the
   API and analysts read `marts.<model>` whatever the profile's default schema is. #}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
