-- Every impression with its domain's task/role, its time split and is_new_item: the one place split rules live.
-- T_end is the last event day over all domains, so pretrain and cold-start splits share one calendar.
with bounds as (
    select max(event_day) as t_end
    from {{ ref('stg_impressions') }}
),

joined as (
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
            case when j.event_day > b.t_end - {{ var('valid_days') }} then 'valid' else 'train' end
        when j.event_day > b.t_end - {{ var('test_days') }} then 'test'
        when j.event_day > b.t_end - {{ var('test_days') }} - {{ var('valid_days') }} then 'valid'
        else 'train'
    end as split
from joined as j
cross join bounds as b
