-- Per user and UTC day D (event_timestamp = D 00:00 UTC): the user's behaviour strictly before D.
--   beh_item_ids / beh_item_domains / beh_click_times: the last `behaviour_length` clicks, most recent first;
--   beh_query_ids: the queries of the last `behaviour_query_length` search requests, most recent first;
--   beh_clicks: every click before D;
--   beh_categories + beh_category_clicks, beh_domains + beh_domain_clicks: clicks per item category / domain
--   with event_day in [D - window, D) (window = feature_window_days), as parallel lists sorted by key.
-- Rows exist on every day the user has an impression and on each of the `window + 1` days after it, so the last row
-- of a quiet spell already has zero window counts and the latest row at or before a time is that time's exact
-- snapshot. Every impression therefore has its snapshot at 00:00 of its own day: Feast's point-in-time join needs a
-- one-day TTL (features/definitions.py BEHAVIOUR_TTL), which bounds it to ~1 candidate row per sample however long
-- the history (with no TTL it paired each sample with every earlier row of its user: O(rows x days)).
-- Incremental by day (macros/day_window.sql): events of day D change the user's rows of every day after D (the
-- click count and the last clicks/queries are cumulative) and create the row of day D itself, and rows exist up to
-- D + window + 1, so a window build over days [F, T] recomputes the rows from day F on, for the users with a row
-- there, from their whole click and search history (only those users' events are read before F - window - 1).
{% set window = var('feature_window_days') %}
{% set n_items = var('behaviour_length') %}
{% set n_queries = var('behaviour_query_length') %}
{{ config(materialized='incremental', incremental_strategy='day_window',
          day_window={'column': 'event_timestamp', 'start': 0, 'end': none, 'timestamp': true}) }}

with calendar as (
    select * from (
        select distinct a.user_id, cast(a.event_day + o.offset_days as date) as feature_day
        from {{ ref('stg_impressions') }} as a
        cross join (select cast(unnest(range(0, {{ window }} + 2)) as integer) as offset_days) as o
        where {{ in_day_window('a.event_day', start=-window - 1, end=none) }}
    )
    where {{ in_day_window('feature_day', start=0, end=none) }}
),

{% set seeded = day_window_active() %}
{% if seeded -%}
{#- A window build starts each calendar user from their state before the window, the latest old row at or before
    days_from (it holds every click and search before that day: a click's day has a row the next day, up to
    days_from), and reads only the window's clicks and searches, not the user's whole history. -#}
{%- set first_day = _day_bound('days_from', 0, false) %}

seed as (
    select
        user_id,
        list_reverse(beh_item_ids) as items,
        list_reverse(beh_item_domains) as domains,
        list_reverse(beh_click_times) as times,
        list_reverse(beh_query_ids) as queries,
        beh_clicks as clicks
    from {{ this }}
    where event_timestamp <= {{ _day_bound('days_from', 0, true) }} and user_id in (select user_id from calendar)
    qualify row_number() over (partition by user_id order by event_timestamp desc) = 1
),

numbered_clicks as (
    select
        c.*,
        coalesce(s.clicks, 0)
            + row_number() over (partition by c.user_id order by c.event_time, c.item_id, c.domain_id) as click_no
    from {{ ref('int_user_clicks') }} as c
    left join seed as s on s.user_id = c.user_id
    where c.event_day >= {{ first_day }} and c.user_id in (select user_id from calendar)
),

-- search requests whose first impression lies in the window (one that began before it is in the seed already)
window_requests as (
    select user_id, request_id, min(event_time) as event_time, min(query_id) as query_id
    from {{ ref('stg_impressions') }}
    where query_id is not null and event_day >= {{ first_day }} and user_id in (select user_id from calendar)
    group by user_id, request_id
),

requests as (
    select
        r.user_id,
        r.event_time,
        r.query_id,
        row_number() over (partition by r.user_id order by r.event_time, r.request_id) as request_no
    from window_requests as r
    anti join (
        select user_id, request_id
        from {{ ref('stg_impressions') }}
        where query_id is not null and event_day < {{ first_day }}
            and request_id in (select request_id from window_requests)
    ) as earlier on earlier.user_id = r.user_id and earlier.request_id = r.request_id
),

{% else -%}

numbered_clicks as (
    select
        *,
        row_number() over (partition by user_id order by event_time, item_id, domain_id) as click_no
    from {{ ref('int_user_clicks') }}
),

requests as (
    select
        user_id,
        event_time,
        query_id,
        row_number() over (partition by user_id order by event_time, request_id) as request_no
    from (
        select user_id, request_id, min(event_time) as event_time, min(query_id) as query_id
        from {{ ref('stg_impressions') }}
        where query_id is not null
        group by user_id, request_id
    )
),

{% endif -%}

-- The running sequence after each click read (all of them, or the window's); of clicks sharing a timestamp only the
-- last carries the sequence, so the as-of join below has exactly one candidate per (user, time).
click_lists as (
    select
        user_id,
        event_time,
        click_no,
        list(item_id) over recent as items,
        list(domain_id) over recent as domains,
        list(cast(floor(epoch(event_time)) as bigint)) over recent as times
    from numbered_clicks
    window recent as (partition by user_id order by click_no rows between {{ n_items - 1 }} preceding and current row)
    qualify click_no = max(click_no) over (partition by user_id, event_time)
),

query_lists as (
    select
        user_id,
        event_time,
        list(query_id) over recent as queries
    from requests
    window recent as (partition by user_id order by request_no rows between {{ n_queries - 1 }} preceding and current row)
    qualify request_no = max(request_no) over (partition by user_id, event_time)
),

{#- On a window build the lists continue the seed's: its last entries, then the window's. -#}
{% set seed_join = 'left join seed as s on s.user_id = l.user_id' if seeded else '' %}

click_sequences as (
    select
        l.user_id,
        l.event_time,
        l.click_no,
        {%- for column in ['items', 'domains', 'times'] %}
        {% if seeded %}list_slice(list_concat(coalesce(s.{{ column }}, []), l.{{ column }}), -{{ n_items }}, -1)
        {%- else %}l.{{ column }}{% endif %} as {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    from click_lists as l
    {{ seed_join }}
),

query_sequences as (
    select
        l.user_id,
        l.event_time,
        {% if seeded %}list_slice(list_concat(coalesce(s.queries, []), l.queries), -{{ n_queries }}, -1)
        {%- else %}l.queries{% endif %} as queries
    from query_lists as l
    {{ seed_join }}
),

day_category_clicks as (
    select user_id, event_day, category, count(*) as clicks
    from {{ ref('int_user_clicks') }}
    where category is not null and {{ in_day_window('event_day', start=-window, end=none) }}
    group by all
),

window_category as (
    select c.user_id, c.feature_day, d.category, cast(sum(d.clicks) as bigint) as clicks
    from calendar as c
    inner join day_category_clicks as d
        on d.user_id = c.user_id
        and d.event_day >= c.feature_day - {{ window }}
        and d.event_day < c.feature_day
    group by all
),

category_lists as (
    select user_id, feature_day, list(category order by category) as categories,
        list(clicks order by category) as category_clicks
    from window_category
    group by all
),

day_domain_clicks as (
    select user_id, event_day, domain_id, count(*) as clicks
    from {{ ref('int_user_clicks') }}
    where {{ in_day_window('event_day', start=-window, end=none) }}
    group by all
),

window_domain as (
    select c.user_id, c.feature_day, d.domain_id, cast(sum(d.clicks) as bigint) as clicks
    from calendar as c
    inner join day_domain_clicks as d
        on d.user_id = c.user_id
        and d.event_day >= c.feature_day - {{ window }}
        and d.event_day < c.feature_day
    group by all
),

domain_lists as (
    select user_id, feature_day, list(cast(domain_id as bigint) order by domain_id) as domains,
        list(clicks order by domain_id) as domain_clicks
    from window_domain
    group by all
),

{#- On a window build, a day before the user's first click (search) of the window has the seed's state. -#}
with_clicks as (
    select
        c.user_id,
        c.feature_day,
        {% if seeded -%}
        coalesce(s.items, sd.items) as items,
        coalesce(s.domains, sd.domains) as domains,
        coalesce(s.times, sd.times) as times,
        coalesce(s.click_no, sd.clicks) as click_no,
        sd.queries as seed_queries
        {%- else -%}
        s.items, s.domains, s.times, s.click_no
        {%- endif %}
    from calendar as c
    asof left join click_sequences as s
        on c.user_id = s.user_id and cast(c.feature_day as timestamp) > s.event_time
    {% if seeded %}left join seed as sd on sd.user_id = c.user_id{% endif %}
),

with_queries as (
    select w.*, {% if seeded %}coalesce(q.queries, w.seed_queries){% else %}q.queries{% endif %} as queries
    from with_clicks as w
    asof left join query_sequences as q
        on w.user_id = q.user_id and cast(w.feature_day as timestamp) > q.event_time
)

select
    w.user_id,
    {{ utc_timestamp('w.feature_day') }} as event_timestamp,
    coalesce(list_reverse(w.items), []::varchar[]) as beh_item_ids,
    coalesce(list_reverse(w.domains), []::bigint[]) as beh_item_domains,
    coalesce(list_reverse(w.times), []::bigint[]) as beh_click_times,
    coalesce(list_reverse(w.queries), []::varchar[]) as beh_query_ids,
    coalesce(cast(w.click_no as bigint), 0) as beh_clicks,
    coalesce(cl.categories, []::varchar[]) as beh_categories,
    coalesce(cl.category_clicks, []::bigint[]) as beh_category_clicks,
    coalesce(dl.domains, []::bigint[]) as beh_domains,
    coalesce(dl.domain_clicks, []::bigint[]) as beh_domain_clicks
from with_queries as w
left join category_lists as cl on cl.user_id = w.user_id and cl.feature_day = w.feature_day
left join domain_lists as dl on dl.user_id = w.user_id and dl.feature_day = w.feature_day
