-- One row per domain_id; a duplicated id keeps the alphabetically first name so reruns agree.
with ranked as (
    select
        cast(domain_id as integer) as domain_id,
        cast(name as varchar) as name,
        cast(task as varchar) as task,
        cast(role as varchar) as role,
        row_number() over (partition by domain_id order by name, task, role) as rn
    from {{ source('raw', 'domains') }}
)

select domain_id, name, task, role
from ranked
where rn = 1
