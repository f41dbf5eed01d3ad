-- Pretrain samples come only from pretrain-role domains, cold-start samples only from cold-start domains.
with samples as (
    select domain_id, 'pretrain' as expected_role, impression_id from {{ ref('samples_pretrain') }}
    union all
    select domain_id, 'coldstart', impression_id from {{ ref('samples_coldstart_train') }}
    union all
    select domain_id, 'coldstart', impression_id from {{ ref('samples_coldstart_valid') }}
    union all
    select domain_id, 'coldstart', impression_id from {{ ref('samples_coldstart_test') }}
)

select s.impression_id, s.expected_role, d.role
from samples as s
inner join {{ ref('stg_domains') }} as d on s.domain_id = d.domain_id
where d.role <> s.expected_role
