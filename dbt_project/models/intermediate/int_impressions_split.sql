-- Every impression with its domain's task/role, its time split and is_new_item: the one place split rules live.
-- Split windows come from the data's own time span, not fixed day counts: the cold-start test split is the last
-- `test_share` of the cold-start domain's impressions by event time, its valid split the `valid_share` before
-- that; pretrain valid is the last `pretrain_valid_share` of the pretrain domains' impressions. A dataset over
-- weeks and one over decades get splits of the same relative size. A cut is an event time (`quantile_disc`):
-- rows strictly after it go to the later split, so impressions of one instant never straddle two splits.
-- The cuts live in int_split_cuts. Incremental (macros/split_rebuild.sql): a new day moves the cuts, so rows of older
-- days can change split; a day-window build recomputes each role's rows from its earliest old or new cut (or the
-- window's first day) on and keeps the older rows, train under either cuts.
{{ config(materialized='incremental', incremental_strategy='split_rebuild',
          split_rebuild={'time': 'event_time', 'role': none},
          test_window={'column': 'event_time', 'end': none}) }}

with joined as (
    select
        i.*,
        d.task,
        d.role,
        it.created_at as item_created_at
    from {{ ref('stg_impressions') }} as i
    inner join {{ ref('stg_domains') }} as d on i.domain_id = d.domain_id
    inner join {{ ref('stg_items') }} as it on i.item_id = it.item_id
)

select
    j.impression_id,
    j.event_time,
    j.event_day,
    j.domain_id,
    j.task,
    j.role,
    j.user_id,
    j.item_id,
    j.query_id,
    j.request_id,
    j.position,
    j.clicked,
    j.event_time < j.item_created_at + to_days({{ var('new_item_days') }}) as is_new_item,
    case
        when j.role = 'pretrain' then
            case when j.event_time > c.pretrain_valid_after then 'valid' else 'train' end
        when j.event_time > c.coldstart_test_after then 'test'
        when j.event_time > c.coldstart_valid_after then 'valid'
        else 'train'
    end as split
from joined as j
cross join {{ ref('int_split_cuts') }} as c
where {{ split_rebuild_condition(this, 'j.event_time', 'j.role') }}
