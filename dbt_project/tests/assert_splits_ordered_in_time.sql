-- Time splits never overlap: within pretrain train < valid, within cold-start train < valid < test
-- (every row of an earlier split happened strictly before every row of a later one).
with spans as (
    select 'pretrain' as part, split, min(event_timestamp) as first_at, max(event_timestamp) as last_at
    from {{ ref('samples_pretrain') }} group by split
    union all
    select 'coldstart', 'train', min(event_timestamp), max(event_timestamp)
    from {{ ref('samples_coldstart_train') }}
    union all
    select 'coldstart', 'valid', min(event_timestamp), max(event_timestamp)
    from {{ ref('samples_coldstart_valid') }}
    union all
    select 'coldstart', 'test', min(event_timestamp), max(event_timestamp)
    from {{ ref('samples_coldstart_test') }}
),

ordered as (
    select *, case split when 'train' then 0 when 'valid' then 1 else 2 end as rank_in_time
    from spans
    where first_at is not null
)

select earlier.part, earlier.split as earlier_split, later.split as later_split,
    earlier.last_at, later.first_at
from ordered as earlier
inner join ordered as later
    on earlier.part = later.part and earlier.rank_in_time < later.rank_in_time
where earlier.last_at >= later.first_at
