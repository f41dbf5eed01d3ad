-- No leakage in user_behaviour: every snapshot row at day D agrees with a recomputation straight from
-- stg_impressions restricted to clicks with event_time < D (independent of the int_* models on purpose):
-- the prior click count, the sequence length, the newest click time, nothing at or after D, and the window counts.
-- Exact when leakage_check_every = 1; otherwise only users whose id hash is 0 modulo it (large data).
-- A day-window build checks the rows it rebuilt, from days_from on (macros/tested_rows.sql); clicks older than the
-- window count towards D through one per-user aggregate, so the check reads each old click once, not once per row.
{% set window = var('feature_window_days') %}
{% set every = var('leakage_check_every') %}
{% set n_items = var('behaviour_length') %}
{% set from = tested_from() %}
{#- Clicks before `split` are aggregated per user; those after it are joined to each row (every row has D >= from,
    so its window [D - window, D) lies after the split). -#}
{% set split = tested_from(-window) if from else "date '1900-01-01'" %}

with snapshot_rows as (
    select
        user_id,
        timezone('UTC', event_timestamp) as d,
        beh_clicks,
        len(beh_item_ids) as n_items,
        len(beh_item_domains) as n_domains,
        len(beh_click_times) as n_times,
        beh_click_times,
        coalesce(list_sum(beh_domain_clicks), 0) as window_clicks
    from {{ ref('user_behaviour') }}
    where hash(user_id) % {{ every }} = 0 {% if from %}and event_timestamp >= {{ utc_timestamp(from) }}{% endif %}
),

clicks as (
    select user_id, event_time
    from {{ ref('stg_impressions') }}
    where clicked = 1 and user_id in (select user_id from snapshot_rows)
),

older_clicks as (
    select user_id, count(*) as n, max(cast(floor(epoch(event_time)) as bigint)) as newest
    from clicks
    where event_time < {{ split }}
    group by user_id
),

recomputed as (
    select
        r.user_id,
        r.d,
        any_value(r.beh_clicks) as beh_clicks,
        any_value(r.n_items) as n_items,
        any_value(r.n_domains) as n_domains,
        any_value(r.n_times) as n_times,
        any_value(r.window_clicks) as window_clicks,
        coalesce(any_value(list_max(r.beh_click_times)), -1) as newest,
        coalesce(any_value(o.n), 0) + count(e.event_time) as expected_clicks,
        count(e.event_time) filter (where e.event_time >= r.d - to_days({{ window }})) as expected_window_clicks,
        coalesce(max(cast(floor(epoch(e.event_time)) as bigint)), any_value(o.newest), -1) as expected_newest
    from snapshot_rows as r
    left join older_clicks as o on o.user_id = r.user_id
    left join clicks as e
        on e.user_id = r.user_id
        and e.event_time >= {{ split }}
        and e.event_time < r.d
    group by r.user_id, r.d
)

select *
from recomputed
where beh_clicks <> expected_clicks
    or n_items <> least(expected_clicks, {{ n_items }})
    or n_domains <> n_items
    or n_times <> n_items
    or newest <> expected_newest
    or newest >= cast(epoch(d) as bigint)
    or window_clicks <> expected_window_clicks
