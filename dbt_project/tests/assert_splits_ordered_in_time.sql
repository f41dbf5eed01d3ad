-- Time splits never overlap: within pretrain train < valid, within cold-start train < valid < test
-- (whole UTC days, so a strict inequality on days).
with spans as (
    select 'pretrain' as part, split,
        min(cast(event_timestamp as date)) as first_day, max(cast(event_timestamp as date)) as last_day
    from {{ ref('samples_pretrain') }} group by split
    union all
    select 'coldstart', 'train', min(cast(event_timestamp as date)), max(cast(event_timestamp as date))
    from {{ ref('samples_coldstart_train') }}
    union all
    select 'coldstart', 'valid', min(cast(event_timestamp as date)), max(cast(event_timestamp as date))
    from {{ ref('samples_coldstart_valid') }}
    union all
    select 'coldstart', 'test', min(cast(event_timestamp as date)), max(cast(event_timestamp as date))
    from {{ ref('samples_coldstart_test') }}
),

ordered as (
    select *, case split when 'train' then 0 when 'valid' then 1 else 2 end as rank_in_time
    from spans
    where first_day is not null
)

select earlier.part, earlier.split as earlier_split, later.split as later_split,
    earlier.last_day, later.first_day
from ordered as earlier
inner join ordered as later
    on earlier.part = later.part and earlier.rank_in_time < later.rank_in_time
where earlier.last_day >= later.first_day
