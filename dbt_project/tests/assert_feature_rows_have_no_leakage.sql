-- No leakage: each feature row's counts equal a recomputation straight from stg_impressions restricted to
-- event_time in [D - window, D). Independent of the int_* models on purpose. Exact when
-- leakage_check_every = 1; otherwise only entities whose id hash is 0 modulo it (large data).
-- A day-window build checks the rows it rebuilt, from days_from on (macros/tested_rows.sql).
{% set window = var('feature_window_days') %}
{% set every = var('leakage_check_every') %}
{% set from = tested_from() %}

{#- the window's rows, selected on the stored timestamp (no per-row conversion of the whole table) -#}
{% set since = ('and event_timestamp >= ' ~ utc_timestamp(from)) if from else '' %}

with feature_rows as (
    select 'user' as entity_type, user_id as entity_id, timezone('UTC', event_timestamp) as d,
        user_impr_7d as impr, user_clicks_7d as clicks
    from {{ ref('user_features') }}
    where hash(user_id) % {{ every }} = 0 {{ since }}
    union all
    select 'item', item_id, timezone('UTC', event_timestamp), item_impr_7d, item_clicks_7d
    from {{ ref('item_features') }}
    where hash(item_id) % {{ every }} = 0 {{ since }}
    union all
    select 'query', query_id, timezone('UTC', event_timestamp), query_impr_7d, query_clicks_7d
    from {{ ref('query_features') }}
    where hash(query_id) % {{ every }} = 0 {{ since }}
),

impressions as (
    select user_id, item_id, query_id, event_time, clicked
    from {{ ref('stg_impressions') }}
    {% if from %}where event_time >= {{ tested_from(-window) }}{% endif %}
),

events as (
    select 'user' as entity_type, user_id as entity_id, event_time, clicked from impressions
    union all
    select 'item', item_id, event_time, clicked from impressions
    union all
    select 'query', query_id, event_time, clicked from impressions where query_id is not null
),

recomputed as (
    select
        f.entity_type, f.entity_id, f.d, f.impr, f.clicks,
        count(e.event_time) as expected_impr,
        coalesce(sum(e.clicked), 0) as expected_clicks
    from feature_rows as f
    left join events as e
        on e.entity_type = f.entity_type
        and e.entity_id = f.entity_id
        and e.event_time >= f.d - to_days({{ window }})
        and e.event_time < f.d
    group by all
)

select *
from recomputed
where impr <> expected_impr or clicks <> expected_clicks
