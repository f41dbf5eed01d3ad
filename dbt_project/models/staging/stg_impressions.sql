-- One row per impression_id; a duplicated id keeps its earliest event (then the smallest request/position)
-- so the tie-break is deterministic. event_time becomes a naive UTC timestamp (day buckets are UTC days).
-- Incremental by day (macros/day_window.sql): a window build reads only the window's raw rows (the parquet
-- min/max statistics skip the other days' parts) and replaces the window's days. An id already staged on an
-- earlier day keeps that earlier row, as a full build would (validation already quarantines such repeats).
{{ config(materialized='incremental', incremental_strategy='day_window', day_window={'column': 'event_day'}) }}

with typed as (
    select
        cast(impression_id as varchar) as impression_id,
        timezone('UTC', cast(event_time as timestamptz)) as event_time,
        cast(domain_id as integer) as domain_id,
        cast(user_id as varchar) as user_id,
        cast(query_id as varchar) as query_id,
        cast(item_id as varchar) as item_id,
        cast(request_id as varchar) as request_id,
        cast(position as integer) as position,
        cast(clicked as tinyint) as clicked
    from {{ source('raw', 'impressions') }}
    where {{ in_day_window('event_time', timestamp=true) }}
),

ranked as (
    select
        *,
        row_number() over (
            partition by impression_id
            order by event_time, request_id, position, item_id, user_id, clicked desc
        ) as rn
    from typed
)

select
    impression_id,
    event_time,
    cast(date_trunc('day', event_time) as date) as event_day,
    domain_id,
    user_id,
    query_id,
    item_id,
    request_id,
    position,
    clicked
from ranked
{% if day_window_active() and var('days_from', none) is not none %}
anti join (select impression_id from {{ this }} where not {{ in_day_window('event_day', end=none) }}) as earlier
    using (impression_id)
{% endif %}
where rn = 1
