-- The feature-row calendar and its point-in-time counts, per (entity_type, entity_id, feature_day):
-- a row at day D 00:00 UTC counts only impressions with event_day in [D - window, D), i.e. event_time < D.
-- Rows exist on the entity's first day (first impression, or for items the day they went live) and on
-- every day whose trailing window holds activity (activity days + 1 .. + window).
-- Incremental by day (macros/day_window.sql): events of day D change the rows of days D .. D + window (D: a first
-- row when D is the entity's first day). A window build over days [F, T] recomputes every row from day F on:
-- after T + window only first rows can change (a backfilled older day moves an entity's first row earlier), and
-- on a daily tick (T = the last day) no row lies after T + window, apart from items going live later.
{% set window = var('feature_window_days') %}
{{ config(materialized='incremental', incremental_strategy='day_window',
          day_window={'column': 'feature_day', 'start': 0, 'end': none}) }}

with recent_activity as (
    select *
    from {{ ref('int_entity_daily_activity') }}
    where {{ in_day_window('activity_day', start=-window, end=none) }}
),

first_days as (
    select entity_type, entity_id, min(activity_day) as first_day
    from {{ ref('int_entity_daily_activity') }}
    group by entity_type, entity_id
    union all
    -- new items need a row before their first impression so serving can score them
    select 'item', item_id, cast(date_trunc('day', created_at) as date)
    from {{ ref('stg_items') }}
),

windowed_days as (
    select distinct a.entity_type, a.entity_id, cast(a.activity_day + o.offset_days as date) as feature_day
    from recent_activity as a
    cross join (select cast(unnest(range(1, {{ window }} + 1)) as integer) as offset_days) as o
),

calendar as (
    select * from (
        select entity_type, entity_id, min(first_day) as feature_day
        from first_days
        group by entity_type, entity_id
        union
        select entity_type, entity_id, feature_day
        from windowed_days
    )
    where {{ in_target_day_window() }}
)

select
    c.entity_type,
    c.entity_id,
    c.feature_day,
    coalesce(cast(sum(a.impressions) as bigint), 0) as impr_7d,
    coalesce(cast(sum(a.clicks) as bigint), 0) as clicks_7d
from calendar as c
left join recent_activity as a
    on a.entity_type = c.entity_type
    and a.entity_id = c.entity_id
    and a.activity_day >= c.feature_day - {{ window }}
    and a.activity_day < c.feature_day
group by c.entity_type, c.entity_id, c.feature_day
