-- Event-timestamped query features for Feast (search domains only: rec impressions have no query).
-- Incremental by day with int_entity_feature_days (macros/day_window.sql): the same rows, from day F on.
{{ config(materialized='incremental', incremental_strategy='day_window',
          day_window={'column': 'event_timestamp', 'end': none, 'timestamp': true}) }}

select
    f.entity_id as query_id,
    {{ utc_timestamp('f.feature_day') }} as event_timestamp,
    f.impr_7d as query_impr_7d,
    f.clicks_7d as query_clicks_7d,
    {{ smoothed_ctr('f.clicks_7d', 'f.impr_7d') }} as query_ctr_7d
from {{ ref('int_entity_feature_days') }} as f
where f.entity_type = 'query' and {{ in_day_window('f.feature_day', end=none) }}
