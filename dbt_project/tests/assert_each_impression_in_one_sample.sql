-- Row conservation per row: every impression lands in exactly one sample mart, and every sample row is an
-- impression. Returns the offending impression_ids with how many marts hold them. History-role impressions are
-- behaviour only, in no sample mart.
with samples as (
    select impression_id from {{ ref('samples_pretrain') }}
    union all
    select impression_id from {{ ref('samples_coldstart_train') }}
    union all
    select impression_id from {{ ref('samples_coldstart_valid') }}
    union all
    select impression_id from {{ ref('samples_coldstart_test') }}
),

copies as (
    select impression_id, count(*) as n
    from samples
    group by impression_id
)

select
    coalesce(i.impression_id, c.impression_id) as impression_id,
    coalesce(c.n, 0) as copies,
    i.impression_id is null as not_an_impression
from (select impression_id from {{ ref('int_impressions_split') }} where role <> 'history') as i
full outer join copies as c on i.impression_id = c.impression_id
where c.n is distinct from 1 or i.impression_id is null
