-- Every click with the clicked item's category: the events user behaviour sequences are made of.
-- A click is an impression with clicked = 1 in any domain and role (a `history` role holds events known only as
-- behaviour, e.g. MIND's click histories; they are never samples).
-- Incremental by day (macros/day_window.sql): a click's row depends only on its own impression, so a window
-- build recomputes just the window's days.
{{ config(materialized='incremental', incremental_strategy='day_window', day_window={'column': 'event_day'}) }}

select
    i.user_id,
    i.item_id,
    i.domain_id,
    i.event_time,
    i.event_day,
    it.category
from {{ ref('stg_impressions') }} as i
inner join {{ ref('stg_items') }} as it on i.item_id = it.item_id
where i.clicked = 1 and {{ in_day_window('i.event_day') }}
