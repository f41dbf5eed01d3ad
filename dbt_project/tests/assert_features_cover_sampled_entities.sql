-- Feast's point-in-time join needs, for every impression, a feature row of its user, item and query
-- at or before the event: the first-day rows guarantee it.
-- A day-window build checks the impressions of its window (macros/tested_rows.sql), against the first feature rows
-- of their entities only.
{% set from = tested_from() %}

with impressions as (
    select user_id, item_id, query_id, event_time
    from {{ ref('stg_impressions') }}
    {% if from %}where event_time >= {{ from }}{% endif %}
),

events as (
    select 'user' as entity_type, user_id as entity_id, event_time from impressions
    union all
    select 'item', item_id, event_time from impressions
    union all
    select 'query', query_id, event_time from impressions where query_id is not null
),

first_rows as (
    select 'user' as entity_type, user_id as entity_id, timezone('UTC', min(event_timestamp)) as first_d
    from {{ ref('user_features') }}
    {% if from %}where user_id in (select user_id from impressions){% endif %}
    group by 2
    union all
    select 'item', item_id, timezone('UTC', min(event_timestamp))
    from {{ ref('item_features') }}
    {% if from %}where item_id in (select item_id from impressions){% endif %}
    group by 2
    union all
    select 'query', query_id, timezone('UTC', min(event_timestamp))
    from {{ ref('query_features') }}
    {% if from %}where query_id in (select query_id from impressions){% endif %}
    group by 2
)

select e.entity_type, e.entity_id, min(e.event_time) as first_event, any_value(f.first_d) as first_feature_row
from events as e
left join first_rows as f on e.entity_type = f.entity_type and e.entity_id = f.entity_id
group by e.entity_type, e.entity_id
having any_value(f.first_d) is null or min(e.event_time) < any_value(f.first_d)
