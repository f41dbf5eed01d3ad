-- Impressions and clicks per (entity, UTC day) for users, items and queries in one long table,
-- so the trailing-window features are computed by a single query for all three entity types.
-- Incremental by day (macros/day_window.sql): a day's counts come from that day's impressions only.
{{ config(materialized='incremental', incremental_strategy='day_window', day_window={'column': 'activity_day'}) }}

with impressions as (
    select user_id, item_id, query_id, event_day, clicked
    from {{ ref('stg_impressions') }}
    where {{ in_day_window('event_day') }}
),

events as (
    select 'user' as entity_type, user_id as entity_id, event_day, clicked from impressions
    union all
    select 'item', item_id, event_day, clicked from impressions
    union all
    select 'query', query_id, event_day, clicked from impressions
    where query_id is not null
)

select
    entity_type,
    entity_id,
    event_day as activity_day,
    count(*) as impressions,
    cast(sum(clicked) as bigint) as clicks
from events
group by entity_type, entity_id, event_day
