-- Event-timestamped item features for Feast. item_age_days is measured at D 00:00 UTC and floored at 0:
-- an item's first row is at the start of the day it went live.
-- Incremental by day with int_entity_feature_days (macros/day_window.sql): the same rows, from day F on.
{{ config(materialized='incremental', incremental_strategy='day_window',
          day_window={'column': 'event_timestamp', 'end': none, 'timestamp': true}) }}

select
    f.entity_id as item_id,
    {{ utc_timestamp('f.feature_day') }} as event_timestamp,
    i.category as item_category,
    i.subcategory as item_subcategory,
    i.has_text as item_has_text,
    greatest(0.0, epoch(cast(f.feature_day as timestamp) - i.created_at) / 86400.0) as item_age_days,
    f.impr_7d as item_impr_7d,
    f.clicks_7d as item_clicks_7d,
    {{ smoothed_ctr('f.clicks_7d', 'f.impr_7d') }} as item_ctr_7d
from {{ ref('int_entity_feature_days') }} as f
inner join {{ ref('stg_items') }} as i on f.entity_id = i.item_id
where f.entity_type = 'item' and {{ in_day_window('f.feature_day', end=none) }}
