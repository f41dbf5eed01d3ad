-- Event-timestamped user features for Feast (point-in-time rules: int_entity_feature_days); cold users
-- (absent from the users table) keep null attributes.
-- Incremental by day with int_entity_feature_days (macros/day_window.sql): the same rows, from day F on.
{{ config(materialized='incremental', incremental_strategy='day_window',
          day_window={'column': 'event_timestamp', 'end': none, 'timestamp': true}) }}

select
    f.entity_id as user_id,
    {{ utc_timestamp('f.feature_day') }} as event_timestamp,
    u.age_bucket as user_age_bucket,
    u.gender as user_gender,
    u.segment as user_segment,
    f.impr_7d as user_impr_7d,
    f.clicks_7d as user_clicks_7d,
    {{ smoothed_ctr('f.clicks_7d', 'f.impr_7d') }} as user_ctr_7d
from {{ ref('int_entity_feature_days') }} as f
left join {{ ref('stg_users') }} as u on f.entity_id = u.user_id
where f.entity_type = 'user' and {{ in_day_window('f.feature_day', end=none) }}
