{# Smoothed CTR of the data contract: (clicks + 1) / (impressions + 20), so rare entities shrink toward 5%. #}
{% macro smoothed_ctr(clicks, impressions) -%}
    (cast({{ clicks }} as double) + 1.0) / (cast({{ impressions }} as double) + 20.0)
{%- endmacro %}

{# A naive UTC timestamp (or date) as the timestamptz the marts and Feast carry. #}
{% macro utc_timestamp(naive) -%}
    timezone('UTC', cast({{ naive }} as timestamp))
{%- endmacro %}

{# The sample columns of docs/data-contract.md, selected from int_impressions_split. #}
{% macro sample_columns() -%}
    impression_id,
    {{ utc_timestamp('event_time') }} as event_timestamp,
    domain_id,
    task,
    user_id,
    item_id,
    query_id,
    request_id,
    position,
    clicked as label,
    is_new_item,
    split
{%- endmacro %}
